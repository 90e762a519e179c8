"""``make cluster`` (``python -m pushmail.cluster_demo``): two nodes on one store
and one bus, started, used and stopped as a person would (issue 17)."""

from __future__ import annotations

import re
import signal
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_node import Imap, free_port, message

from conftest import Cluster
from pushmail.cluster_demo import main as demo_main


def test_two_nodes_act_as_one_and_stop_on_ctrl_c(cluster: Cluster, tmp_path: Path) -> None:
    imap_a, imap_b, lmtp_a, lmtp_b = (free_port() for _ in range(4))
    demo = subprocess.Popen(
        [sys.executable, "-m", "pushmail.cluster_demo", "--store", cluster.store,
         "--bus", cluster.bus, "--dir", str(tmp_path / "demo"),
         "--imap-ports", f"{imap_a},{imap_b}", "--lmtp-ports", f"{lmtp_a},{lmtp_b}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert demo.stdout is not None
        printed = b""
        while b"Ctrl-C stops them" not in printed:
            line = demo.stdout.readline()
            assert line, printed.decode()
            printed += line
        found = re.search(rb"user: (\S+)  password: (\S+)", printed)
        assert found is not None, printed.decode()
        assert f"node B: IMAP 127.0.0.1:{imap_b}  LMTP 127.0.0.1:{lmtp_b}".encode() in printed
        user, password = found.group(1).decode(), found.group(2).decode()

        idler = Imap(imap_b, user, password)
        idler.ok("SELECT INBOX")
        idler.idle()
        with smtplib.LMTP("127.0.0.1", lmtp_a, timeout=30) as lmtp:
            lmtp.sendmail("sender@example.net", [user], message("through A"))
        assert idler.wait_for(rb"EXISTS") == b"* 1 EXISTS"
        idler.done()
        idler.close()

        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=40)
        assert demo.returncode == 0, rest.decode()
        assert b"node A stopped (0)" in rest and b"node B stopped (0)" in rest, rest.decode()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()


def test_no_nats_is_explained_and_exits_69(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = free_port()  # nothing listens there
    code = demo_main(["--store", cluster.store, "--bus", f"nats://127.0.0.1:{closed}"])
    assert code == 69
    assert "apt install nats-server" in capsys.readouterr().err
