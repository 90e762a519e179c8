"""``pushmail backup`` and ``pushmail restore``: a consistent copy of the data directory
taken while the server runs, and putting one back.

Each SQLite database (mail, push) is copied with SQLite's online backup API in one
step, which reads one snapshot: in WAL mode that holds no lock that would stop the
server's writers, and the copy holds exactly the transactions committed before the
snapshot began — every message that got its ``250`` before the backup started is in
it. Copying the files with ``cp`` instead could pair a database file with a WAL from
another moment, or miss the WAL altogether.

The other files (TLS pair, VAPID key) are copied as they are, modes kept. Runtime
state (``events/`` sockets, ``stats/``) is not copied: a starting server rebuilds it.
A manifest (``pushmail-backup.json``) lists every file with its size and SHA-256;
``restore`` checks them before anything is put in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from pushmail import __version__

__all__ = ["BackupError", "BackupReport", "make_backup", "restore_backup"]

MANIFEST = "pushmail-backup.json"
FORMAT = 1
# Runtime state a starting server rebuilds, and SQLite's side files (their content is
# inside the copied database).
_SKIP_DIRS = frozenset({"events", "stats"})
_SKIP_SUFFIXES = ("-wal", "-shm", "-journal")
_DATABASE_SUFFIX = ".sqlite3"


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why."""


@dataclass(frozen=True, slots=True)
class BackupReport:
    files: int
    bytes: int
    seconds: float


def make_backup(data_dir: Path, dest: Path) -> BackupReport:
    """Copy ``data_dir`` into ``dest`` (which must not exist, or be empty)."""
    started = time.monotonic()
    if not (data_dir / "pushmail.sqlite3").is_file():
        raise BackupError(f"{data_dir} holds no pushmail database")
    _prepare_empty_dir(dest)
    entries: list[dict[str, object]] = []
    for src in sorted(data_dir.iterdir()):
        if src.is_dir() or src.name.endswith(_SKIP_SUFFIXES) or not src.is_file():
            continue  # runtime directories, SQLite side files, sockets
        target = dest / src.name
        if src.name.endswith(_DATABASE_SUFFIX):
            _copy_database(src, target)
        else:
            shutil.copy2(src, target)
        os.chmod(target, src.stat().st_mode & 0o777)
        entries.append(_describe(target))
    manifest = {
        "format": FORMAT,
        "pushmail": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": entries,
    }
    _write_durably(dest / MANIFEST, json.dumps(manifest, indent=1).encode() + b"\n")
    _fsync_dir(dest)
    total = sum(int(str(e["size"])) for e in entries)
    return BackupReport(len(entries), total, time.monotonic() - started)


def restore_backup(source: Path, data_dir: Path) -> BackupReport:
    """Check every file of the backup in ``source``, then copy them into ``data_dir``
    (which must not exist or be empty: restoring never overwrites live data)."""
    started = time.monotonic()
    entries = _read_manifest(source)
    for entry in entries:
        name = str(entry["name"])
        if _describe(source / name) != entry:
            raise BackupError(f"{source / name} does not match the manifest (damaged copy?)")
    _prepare_empty_dir(data_dir)
    for entry in entries:
        name = str(entry["name"])
        shutil.copy2(source / name, data_dir / name)
        with open(data_dir / name, "rb+") as f:
            os.fsync(f.fileno())
    _fsync_dir(data_dir)
    _renew_uidvalidity(data_dir / "pushmail.sqlite3")
    total = sum(int(str(e["size"])) for e in entries)
    return BackupReport(len(entries), total, time.monotonic() - started)


def _renew_uidvalidity(db: Path) -> None:
    """Give every restored mailbox a new, larger UIDVALIDITY.

    The live server went on after the backup: clients saw UIDs above the backup's
    UIDNEXT, and the restored server will hand those UIDs to other messages. With the
    old UIDVALIDITY a client would take the new messages for the ones it has cached
    (RFC 9051 §2.3.1.1 forbids reusing a UID under one UIDVALIDITY); a new one makes
    it drop its cache and resynchronise. The values follow the store's rule (a
    counter never behind the clock), so they exceed any the live server gave out
    before this moment."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT value FROM counters WHERE name = 'uidvalidity'").fetchone()
        value = max(0 if row is None else int(row[0]), int(time.time()))
        ids = [r[0] for r in conn.execute("SELECT id FROM mailboxes ORDER BY id")]
        for mailbox_id in ids:
            value += 1
            conn.execute("UPDATE mailboxes SET uidvalidity = ? WHERE id = ?", (value, mailbox_id))
        conn.execute(
            "INSERT INTO counters (name, value) VALUES ('uidvalidity', ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (value,),
        )
        conn.execute("COMMIT")
    except sqlite3.Error as e:
        raise BackupError(f"cannot renew UIDVALIDITY in {db}: {e}") from e
    finally:
        conn.close()


def _copy_database(src: Path, target: Path) -> None:
    """One consistent snapshot of ``src`` into ``target``, checked and fsynced."""
    partial = target.with_name(target.name + ".partial")
    try:
        # mode=rw: never create an empty database where the server's one is missing
        source = sqlite3.connect(f"file:{src}?mode=rw", uri=True, timeout=30)
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy, pages=-1)  # one step, one read snapshot
            copy.execute("PRAGMA journal_mode=DELETE")  # a single file, no WAL beside it
            status = copy.execute("PRAGMA quick_check").fetchone()[0]
            if status != "ok":
                raise BackupError(f"copy of {src.name} failed its check: {status}")
        finally:
            copy.close()
            source.close()
    except sqlite3.Error as e:
        partial.unlink(missing_ok=True)
        raise BackupError(f"cannot copy {src}: {e}") from e
    with open(partial, "rb+") as f:
        os.fsync(f.fileno())
    partial.rename(target)


def _prepare_empty_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise BackupError(f"{path} is not a directory")
    if path.is_dir() and any(path.iterdir()):
        raise BackupError(f"{path} is not empty; give a new or empty directory")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise BackupError(f"cannot create {path}: {e.strerror or e}") from e


def _describe(path: Path) -> dict[str, object]:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as e:
        raise BackupError(f"cannot read {path}: {e.strerror or e}") from e
    return {"name": path.name, "size": path.stat().st_size, "sha256": digest.hexdigest()}


def _read_manifest(source: Path) -> list[dict[str, object]]:
    try:
        manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BackupError(f"{source} is not a pushmail backup ({MANIFEST}: {e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{source / MANIFEST}: unknown backup format")
    entries = manifest.get("files")
    if not isinstance(entries, list) or not all(_valid_entry(e) for e in entries):
        raise BackupError(f"{source / MANIFEST}: malformed file list")
    return entries


def _valid_entry(entry: object) -> bool:
    """A plain file name (never a path out of the backup directory) with its facts."""
    if not isinstance(entry, dict) or set(entry) != {"name", "size", "sha256"}:
        return False
    name = entry["name"]
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
