"""Tests of the scale benchmark's own logic, plus small real runs.

Run with ``.venv/bin/pytest bench/test_idle_scale.py``. The end-to-end cases start a
real pushmail (``pushmail serve``, ``pushmail user import``) and, as root on Debian, a
real Dovecot; each is skipped with the reason when unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import dovecot
import idle_scale
import imap_idle_client
import proctools
import pytest
import scale_compare
import scale_plot
from idle_latency import Delivery, plan_sessions, plan_users
from lmtp_burst import _dot_stuffed


def _args(*argv: str) -> object:
    return idle_scale.parse_args(list(argv))


def test_plan_spreads_users_workers_and_client_processes() -> None:
    args = idle_scale.parse_args(["--n", "100000", "--devices", "2"])
    plan = idle_scale.plan_run("pushmail", 100_000, args)
    assert plan.users == 10_000  # capped by --broadcast-users: 10 devices each
    assert plan.workers == 7 and plan.client_procs == 7  # <= 15,000 sessions each
    assert plan.sources == [f"127.0.0.{10 + i}" for i in range(7)]
    small = idle_scale.plan_run("pushmail", 1000, args)
    cpus = os.cpu_count() or 1  # at least one worker per CPU, as `workers = 0` runs
    assert (small.users, small.workers, small.client_procs) == (500, max(1, cpus), 1)
    assert idle_scale.plan_run("dovecot", 1000, args).workers == 0
    fixed = idle_scale.parse_args(["--n", "10", "--users", "50", "--workers", "3"])
    assert idle_scale.plan_run("pushmail", 10, fixed).users == 10  # never more than N
    assert idle_scale.plan_run("pushmail", 10, fixed).workers == 3


def test_parse_args_rejects_bad_counts() -> None:
    with pytest.raises(SystemExit):
        idle_scale.parse_args(["--n", "10,x"])
    with pytest.raises(SystemExit):
        idle_scale.parse_args(["--n", "0"])
    assert idle_scale.parse_args(["--n", "5, 7"]).ns == [5, 7]


def test_advance_moves_expected_counts_by_messages_per_user() -> None:
    users = plan_users(2)
    sessions = plan_sessions(4, users)  # 0, 2 -> user 0; 1, 3 -> user 1
    baseline = {0: 3, 1: 0, 2: 3}  # session 3 never became idle
    done = [Delivery(users[0][0], 1), Delivery(users[0][0], 2), Delivery(users[1][0], 3)]
    idle_scale.advance(baseline, sessions, done)
    assert baseline == {0: 5, 1: 1, 2: 5}


def test_ratios_say_how_much_better_pushmail_did() -> None:
    push = {
        "n": 10,
        "per_session_kb": {"pss": 2.0, "rss": 0},
        "single": {"p99_ms": 5.0},
        "broadcast": {"deliver_s": 10.0},
        "connect_per_s": 1000.0,
    }
    dove = {
        "per_session_kb": {"pss": 8.0, "rss": 9.0},
        "single": {"p99_ms": 50.0},
        "broadcast": {"deliver_s": 5.0},
        "connect_per_s": 100.0,
    }
    assert idle_scale.ratios(push, dove) == {
        "pushmail_n": 10,
        "pss_per_session": 4.0,
        "single_p99": 10.0,
        "broadcast_deliver_s": 0.5,
        "connect_rate": 10.0,
    }


def test_loop_figures_take_the_worst_worker() -> None:
    stats: list[dict[str, object]] = [
        {"worker": "0", "max_loop_lag_ms": 3.5},
        {"worker": "1", "max_loop_lag_ms": 12.0},
        {"worker": "2"},
    ]
    got = idle_scale.loop_figures(stats)
    assert got["max_lag_ms"] == 12.0
    assert got["per_worker_ms"] == {"0": 3.5, "1": 12.0, "2": None}


def test_dot_stuffing() -> None:
    assert _dot_stuffed(b".a\r\n..b\r\nc\r\n") == b"..a\r\n...b\r\nc\r\n.\r\n"


def test_tcp_socket_memory_and_cpu_time_are_read() -> None:
    assert proctools.tcp_socket_memory_kb() >= 0
    spent = proctools.cpu_seconds([os.getpid()])
    sum(i * i for i in range(300_000))
    assert proctools.cpu_seconds([os.getpid()]) >= spent > 0


def test_client_connects_from_the_given_loopback_address() -> None:
    async def scenario() -> str:
        with socket.create_server(("127.0.0.1", 0)) as server:
            server.setblocking(False)
            port = server.getsockname()[1]
            client = await imap_idle_client._connect_from("127.0.0.1", port, "127.0.0.23")
            with client:
                conn, peer = await asyncio.get_running_loop().sock_accept(server)
                conn.close()
            return str(peer[0])

    assert asyncio.run(scenario()) == "127.0.0.23"


def test_plot_writes_a_png(tmp_path: Path) -> None:
    lines = [
        {"bench": "idle_scale", "server": "pushmail", "n": n, "fill": 0,
         "per_session_kb": {"pss": 2.0 + i, "rss": 3.0}, "single": {"p99_ms": 4.0},
         "broadcast": {"p99_ms": 40.0}}
        for i, n in enumerate((1000, 10000))
    ]  # fmt: skip
    lines.append({"bench": "idle_scale", "server": "dovecot", "n": 10, "error": "x"})
    source = tmp_path / "runs.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines) + "progress\n")
    runs = scale_plot.load([source])
    assert [r["n"] for r in runs] == [1000, 10000]
    assert scale_plot.series(runs, "per_session_kb", "pss") == ([1000, 10000], [2.0, 3.0])
    out = tmp_path / "scale.png"
    assert scale_plot.main([str(source), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")


def test_compare_takes_one_run_at_dovecots_n(tmp_path: Path) -> None:
    def run(server: str, n: int, pss: float, connects: float) -> dict[str, object]:
        return {"bench": "idle_scale", "server": server, "n": n, "workers": 2,
                "connect_per_s": connects, "per_session_kb": {"pss": pss},
                "single": {"p99_ms": 2.0}, "broadcast": {"deliveries_per_s": 500.0,
                "p99_ms": 40_000.0, "missed": 0}, "closed_by_server": 0}  # fmt: skip

    lines = [run("pushmail", 1000, 8.0, 2000.0), run("pushmail", 10000, 3.0, 2500.0),
             run("dovecot", 10000, 9.0, 250.0)]  # fmt: skip
    source = tmp_path / "run.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    pushmail, dovecot = scale_compare.pick(scale_plot.load([source]))
    assert (pushmail["n"], pushmail["per_session_kb"]) == (10000, {"pss": 3.0})
    table = scale_compare.table(pushmail, dovecot)
    assert "| 2,500 /s | 250 /s | 10.0× |" in table  # higher is better
    assert "| 3.00 KB | 9.00 KB | 3.0× |" in table  # lower is better
    assert "| 40 s |" in table and "—" in table  # whole-server figure missing here
    out = tmp_path / "scale.png"
    pytest.importorskip("matplotlib")
    assert scale_compare.main([str(source), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    source.write_text(json.dumps(lines[0]) + "\n")
    assert scale_compare.main([str(source), "--table"]) == 1  # no Dovecot: says so


def _run_bench(*argv: str) -> list[dict[str, object]]:
    script = Path(__file__).with_name("idle_scale.py")
    done = subprocess.run(
        [sys.executable, str(script), *argv], capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


SMALL = ("--n", "40", "--devices", "4", "--messages", "3", "--hold", "1", "--settle", "0.5",
         "--grace", "20", "--lmtp-connections", "3", "--rcpts-per-message", "2")  # fmt: skip


def _check_run(run: dict[str, object], server: str, n: int = 40, tls: bool = False) -> None:
    assert run["server"] == server and run["n"] == n and run["users"] == n // 4
    assert run["tls"] is tls
    assert run["sessions_ready"] == n and run["closed_by_server"] == 0
    single, broadcast = run["single"], run["broadcast"]
    assert isinstance(single, dict) and isinstance(broadcast, dict)
    assert single["pairs"] == 12 and single["missed"] == 0  # 3 messages x 4 devices
    assert broadcast["pairs"] == n and broadcast["missed"] == 0
    assert broadcast["delivery_errors"] == 0
    per_session = run["per_session_kb"]
    assert isinstance(per_session, dict) and isinstance(per_session["pss"], float)


def test_pushmail_end_to_end_with_filled_mailboxes() -> None:
    if importlib.util.find_spec("pushmail.cli") is None:
        pytest.skip("pushmail is not installed in this interpreter")
    (run,) = _run_bench(*SMALL, "--dovecot-n", "0", "--fill", "50", "--workers", "2")
    _check_run(run, "pushmail")
    assert run["fill"] == 50 and run["workers"] == 2
    loop = run["loop"]
    assert isinstance(loop, dict) and len(loop["per_worker_ms"]) == 2
    assert run["server_log"] == {"error_lines": 0, "first": []}


def test_pushmail_end_to_end_over_tls() -> None:
    if importlib.util.find_spec("pushmail.cli") is None:
        pytest.skip("pushmail is not installed in this interpreter")
    (run,) = _run_bench(*SMALL, "--n", "200", "--dovecot-n", "0", "--tls")
    _check_run(run, "pushmail", n=200, tls=True)
    assert run["server_log"] == {"error_lines": 0, "first": []}


def test_dovecot_end_to_end_over_tls() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("installing and running Dovecot needs root on Debian")
    argv = (*SMALL, "--skip-pushmail", "--tls", "--dovecot-n", "200", "--dovecot-hibernate", "1")
    (run,) = _run_bench(*argv)
    _check_run(run, "dovecot", n=200, tls=True)


def test_client_tls_speaks_to_pushmails_server_context(tmp_path: Path) -> None:
    from pushmail.transport.tls import ensure_certificate, server_context

    server_ctx = server_context(*ensure_certificate(tmp_path, "localhost"))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_ctx.wrap_bio(incoming, outgoing, server_side=True)
    client = imap_idle_client.ClientTls(imap_idle_client.client_context())
    to_server, plain = client.start(), b""
    for _ in range(10):  # pump the handshake both ways
        incoming.write(to_server)
        with contextlib.suppress(ssl.SSLWantReadError):
            server.do_handshake()
        plain, to_server = client.receive(outgoing.read())
        if client.shaken and not to_server:
            break
    assert client.shaken and plain == b""
    server.write(b"* OK ready\r\n")
    plain, _ = client.receive(outgoing.read())
    assert plain == b"* OK ready\r\n"
    incoming.write(client.encrypt(b"a LOGIN u p\r\n"))
    assert server.read(100) == b"a LOGIN u p\r\n"
    with pytest.raises(ssl.SSLError):
        client.receive(b"\x16\x03\x03\x00\x05garbage-that-is-no-tls-record")


def test_dovecot_end_to_end() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("installing and running Dovecot needs root on Debian")
    (run,) = _run_bench(*SMALL, "--skip-pushmail", "--dovecot-n", "40", "--dovecot-hibernate", "1")
    _check_run(run, "dovecot")
    assert run["hibernate_s"] == 1 and "ratio" not in run


def test_dovecot_hibernate_config_is_accepted(tmp_path: Path) -> None:
    if shutil.which("doveconf") is None or os.geteuid() != 0:
        pytest.skip("needs root and an installed dovecot")
    tmp_path.chmod(0o755)
    inst = dovecot.DovecotInstance(
        tmp_path, [("a@b.test", "pw")], sessions=40000, hibernate_secs=5, login_processes=2
    )
    inst.write_config()
    out = subprocess.run(
        ["doveconf", "-c", str(inst.config_path), "-n"], capture_output=True, text=True, check=True
    )
    assert "client_limit = 6000" in out.stdout  # per imap-hibernate process
    assert "client_limit = 15000" in out.stdout  # per imap-login process
    assert "process_min_avail = 2" in out.stdout
    assert "ssl = no" in out.stdout


def test_dovecot_tls_config_is_accepted(tmp_path: Path) -> None:
    if shutil.which("doveconf") is None or os.geteuid() != 0:
        pytest.skip("needs root and an installed dovecot")
    tmp_path.chmod(0o755)
    inst = dovecot.DovecotInstance(
        tmp_path, [("a@b.test", "pw")], sessions=40000, login_processes=2, tls=True
    )
    inst.write_config()
    out = subprocess.run(
        ["doveconf", "-c", str(inst.config_path), "-n"], capture_output=True, text=True, check=True
    )
    assert "ssl = required" in out.stdout
    assert f"port = {inst.imaps_port}" in out.stdout
    assert "client_limit = 9000" in out.stdout  # per imap-login process: 2 fds per client
    assert (tmp_path / "tls-cert.pem").exists()
