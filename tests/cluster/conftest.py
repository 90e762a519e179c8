"""Cluster fixtures: one scratch PostgreSQL database and a NATS subject prefix of
the test's own, and a way to start ``pushmail serve`` nodes on them (issue 17)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_node import Node, pushmail

from pg_testdb import scratch_database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "events"))

from nats_service import nats_url, random_prefix

PASSWORD = "secret"


class Cluster:
    def __init__(self, root: Path, store: str, bus: str) -> None:
        self.root = root
        self.store = store
        self.bus = bus
        self.nodes: list[Node] = []

    def node(self, config: str = "") -> Node:
        return self.start(1, config)[0]

    def start(self, count: int, config: str = "") -> list[Node]:
        """``count`` more nodes, started side by side (each takes seconds to import
        and connect on a busy machine)."""
        nodes = []
        for _ in range(count):
            n = Node(self.root / f"node{len(self.nodes)}", self.store, self.bus, config=config)
            self.nodes.append(n)
            nodes.append(n)
            n.spawn()
        for n in nodes:
            n.wait_ready()
        return nodes

    def cli(self, *args: str, stdin: bytes | None = None) -> str:
        return pushmail(self.root / "cli", self.store, self.bus, *args, stdin=stdin)

    def add_users(self, *addresses: str) -> None:
        """Users with the password PASSWORD, in one command (each takes seconds)."""
        lines = "".join(f"{a}:{{PLAIN}}{PASSWORD}\n" for a in addresses)
        self.cli("user", "import", "-", stdin=lines.encode())


def _cluster(root: Path) -> Iterator[Cluster]:
    bus = f"{nats_url()}?prefix={random_prefix()}"
    with scratch_database() as store:
        (root / "cli").mkdir(parents=True)
        c = Cluster(root, store, bus)
        try:
            yield c
        finally:
            for n in c.nodes:
                n.stop()
            if os.environ.get("PUSHMAIL_SHOW_LOG"):
                for n in c.nodes:
                    print(n.data_dir, n.log())


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """An empty store and bus of the test's own; the test starts the nodes."""
    yield from _cluster(tmp_path)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two nodes on one store and bus, shared by a module's tests (starting nodes
    is most of their time); each test uses users of its own."""
    for c in _cluster(tmp_path_factory.mktemp("pair")):
        c.add_users(*(f"user{n}@example.org" for n in range(8)))
        c.start(2)
        yield c
