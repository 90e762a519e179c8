"""Every transcript in this directory, replayed against the real driver (see
``trace_replay`` for the format), plus checks that the replayer itself fails on a
wrong answer, so a transcript can never pass vacuously."""

from __future__ import annotations

from pathlib import Path

import pytest
from trace_replay import Step, normalize, parse_trace, replay

HERE = Path(__file__).parent
TRACES = sorted(HERE.glob("*.txt"))


@pytest.mark.parametrize("path", TRACES, ids=[p.stem for p in TRACES])
def test_transcript(path: Path, tmp_path: Path) -> None:
    replay(path, tmp_path)


def test_there_are_transcripts() -> None:
    stems = {p.stem.split("_")[0] for p in TRACES}
    assert {"rfc7162", "rfc5465", "rfc4978", "rfc9051"} <= stems


def test_normalize_drops_human_text_only() -> None:
    assert normalize("* OK [UIDNEXT 5] predicted") == "* OK [UIDNEXT 5]"
    assert normalize("a1 OK done") == "a1 OK"
    assert normalize("* 3 FETCH (FLAGS ())") == "* 3 FETCH (FLAGS ())"


def test_parse_trace_groups_server_lines() -> None:
    steps = parse_trace("# x\nC: a NOOP\nS: * 1 EXISTS\nS: ...\nS: a OK\n! deliver INBOX\n")
    assert steps == [
        Step("C", "a NOOP", ["* 1 EXISTS", "a OK"], more_ok=True),
        Step("!", "deliver INBOX"),
    ]


def test_a_wrong_answer_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("C: a SELECT INBOX\nS: * 7 EXISTS\nS: ...\nS: a OK\n")
    with pytest.raises(AssertionError, match="expected"):
        replay(bad, tmp_path)


def test_an_unexpected_line_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("! deliver INBOX\nC: a SELECT INBOX\nS: a OK [READ-WRITE]\n")
    with pytest.raises(AssertionError, match="unexpected"):
        replay(bad, tmp_path)


def test_second_connection_lines_keep_their_own_steps() -> None:
    steps = parse_trace("C: a NOOP\nS: a OK\nC2: b NOOP\nS2: b OK\n")
    assert [(s.conn, s.text, s.expect) for s in steps] == [
        (1, "a NOOP", ["a OK"]),
        (2, "b NOOP", ["b OK"]),
    ]
    with pytest.raises(ValueError, match="without its"):
        parse_trace("C: a NOOP\nS2: a OK\n")


def test_elided_data_matches_only_parenthesised_text(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text(
        "! deliver INBOX\nC: s SELECT INBOX\nS: ...\nS: s OK [READ-WRITE]\n"
        "C: f FETCH 1 ALL\nS: * 1 FETCH (...)\nS: f OK\n"
    )
    (tmp_path / "a").mkdir()
    replay(good, tmp_path / "a")
    bad = tmp_path / "bad.txt"
    bad.write_text(
        "! deliver INBOX\nC: s SELECT INBOX\nS: ...\nS: s OK [READ-WRITE]\n"
        "C: f FETCH 1 ALL\nS: * 2 FETCH (...)\nS: f OK\n"
    )
    with pytest.raises(AssertionError, match="expected"):
        (tmp_path / "b").mkdir()
        replay(bad, tmp_path / "b")
