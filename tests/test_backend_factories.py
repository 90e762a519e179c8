"""Backends are chosen by URL (issue 16 item 4): the config's ``store``/``bus`` are
checked when loaded, ``open_store``/``open_bus`` build what they name, and no
module but those factories constructs a store or a bus implementation."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from pushmail.config import ConfigError, load_config
from pushmail.events.factory import BusUrlError, open_bus, open_publisher, parse_bus_url
from pushmail.events.unixsock import UnixSocketBus, UnixSocketPublisher
from pushmail.imap.store_errors import STORE_ERROR_CODES, response_code
from pushmail.store import interfaces as si
from pushmail.store.factory import StoreUrlError, open_store, parse_store_url, sqlite_path
from pushmail.store.sqlite import SqliteStore

SRC = Path(__file__).resolve().parent.parent / "src" / "pushmail"
# Class -> the modules that may call it: its factory (and, for the socket bus's
# publisher, the bus it is a part of).
IMPLEMENTATIONS = {
    "SqliteStore": {"store/factory.py"},
    "PostgresStore": {"store/factory.py"},
    "UnixSocketBus": {"events/factory.py"},
    "UnixSocketPublisher": {"events/factory.py", "events/unixsock.py"},
    "NatsBus": {"events/factory.py"},
    "NatsPublisher": {"events/factory.py"},
}


def test_only_the_factories_construct_backends() -> None:
    wrong = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
                if name in IMPLEMENTATIONS and rel not in IMPLEMENTATIONS[name]:
                    wrong.append(f"{rel}:{node.lineno} {name}(...)")
    assert not wrong, wrong


def test_defaults_are_the_data_dir(tmp_path: Path) -> None:
    config = load_config(None, {"data_dir": str(tmp_path)})
    assert config.store_url == f"sqlite://{tmp_path}/pushmail.sqlite3"
    assert config.bus_url == f"unix://{tmp_path}/events"
    assert sqlite_path(config.store_url) == config.db_path


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pushmail.toml"
    path.write_text('store = "sqlite:db/mail.sqlite3"\nbus = "unix:ev"\n')
    config = load_config(path)
    assert config.store_url == f"sqlite://{tmp_path}/db/mail.sqlite3"
    assert config.bus_url == f"unix://{tmp_path}/ev"


def test_cluster_urls_are_kept() -> None:
    config = load_config(
        None, {"store": "postgresql://pm@db.example/mail", "bus": "nats://n1:4222?prefix=a.b"}
    )
    assert config.store_url == "postgresql://pm@db.example/mail"
    bus = parse_bus_url(config.bus_url)
    assert (bus.kind, bus.server, bus.prefix) == ("nats", "nats://n1:4222", "a.b")
    assert parse_store_url("postgres:///mail?host=/run/postgresql").kind == "postgresql"
    # libpq is given the URL without pushmail's own parameters, host or no host.
    assert parse_store_url("postgresql:///mail?pool_timeout=2").dsn == "postgresql:///mail"
    assert (
        parse_store_url("postgresql://pm@db:5433/mail?sslmode=require&pool_max_size=3").dsn
        == "postgresql://pm@db:5433/mail?sslmode=require"
    )


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("store", "mysql://db/mail", "unknown store 'mysql'"),
        ("store", "/var/lib/mail.sqlite3", "expected a URL"),
        ("store", "sqlite://otherhost/x", "no host"),
        ("store", "sqlite:///", "no file"),
        ("store", "postgresql://db:notaport/mail", "bad PostgreSQL URL"),
        ("bus", "nats://n1", "expected nats://HOST:PORT"),
        ("bus", "nats://n1:4222?prefix=a*b", "bad prefix"),
        ("bus", "nats://n1:4222?subject=x", "unknown parameter 'subject'"),
        ("bus", "amqp://broker", "unknown bus 'amqp'"),
        ("bus", "unix://host/dir", "no host"),
        ("bus", 5, "expected a non-empty string"),
    ],
)
def test_bad_urls_are_config_errors(tmp_path: Path, key: str, value: object, says: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"{key} = {value!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"'{key}'" in str(caught.value) and says in str(caught.value)


def test_parsers_raise_their_own_errors() -> None:
    with pytest.raises(StoreUrlError):
        parse_store_url("")
    with pytest.raises(BusUrlError):
        parse_bus_url("tls://:4222")


def test_open_store_and_bus_build_the_embedded_pair(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/m.sqlite3")
    try:
        assert isinstance(store, SqliteStore)
        assert store.create_user("a@example.org", "x").address == "a@example.org"
    finally:
        store.close()
    bus = open_bus(f"unix://{tmp_path}/ev")
    assert isinstance(bus, UnixSocketBus)
    publisher = open_publisher(f"unix://{tmp_path}/ev")
    assert isinstance(publisher, UnixSocketPublisher)
    publisher.close()

    async def run() -> None:
        bus.start(asyncio.get_running_loop())
        heard: list[si.StoreError | None] = []
        remove = bus.on_resync(lambda users: heard.append(None))
        remove()
        bus.close()
        assert heard == []

    asyncio.run(run())


def test_store_errors_have_one_table() -> None:
    """Every StoreError subclass the store defines has its code, found through
    the class hierarchy (a subclass of StoreUnavailable is still UNAVAILABLE)."""
    defined = [
        v
        for v in vars(si).values()
        if isinstance(v, type) and issubclass(v, si.StoreError) and v.__module__ == si.__name__
    ]
    assert set(defined) <= set(STORE_ERROR_CODES)

    class Lost(si.StoreUnavailable):
        pass

    assert response_code(si.NotFound("x")) == "NONEXISTENT"
    assert response_code(si.AlreadyExists("x")) == "ALREADYEXISTS"
    assert response_code(si.NoSpace("x")) == "OVERQUOTA"
    assert response_code(Lost("x")) == "UNAVAILABLE"
    assert response_code(si.StoreError("x")) == "SERVERBUG"


def test_migrate_refuses_what_it_cannot_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pushmail.cli import main

    data = ["--data-dir", str(tmp_path)]
    assert main(["migrate", "--to", f"sqlite://{tmp_path}/other.sqlite3", *data]) == 64
    assert "postgresql://" in capsys.readouterr().err
    assert (
        main(["migrate", "--to", "postgresql://db/x", "--store", "postgresql://db/y", *data]) == 64
    )
    assert "not SQLite" in capsys.readouterr().err
    assert main(["migrate", "--to", "postgresql://db/x", *data]) == 66  # no store here
    assert main(["migrate", "--to", "mysql://db/x", *data]) == 64


def test_backup_refuses_a_store_outside_the_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pushmail.cli import main

    data = ["--data-dir", str(tmp_path / "data")]
    assert main(["backup", str(tmp_path / "b"), "--store", "postgresql://db/x", *data]) == 64
    assert "pg_dump" in capsys.readouterr().err
    assert main(["restore", str(tmp_path / "b"), "--store", "postgresql://db/x", *data]) == 64
