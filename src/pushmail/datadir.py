"""Checks on the data directory shared by every command that opens it.

Only commands that start something (``serve``, ``user add``/``import``,
``demo-user``, ``restore``) may create a data directory or a store in it: a typo in
``--data-dir`` given to ``user list`` must say so, not leave an empty store behind
and report "no users".
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["EX_CANTCREAT", "EX_NOINPUT", "DataDirError", "create_data_dir", "require_store"]

EX_NOINPUT = 66  # sysexits.h: an input file did not exist or was not readable
EX_CANTCREAT = 73


class DataDirError(Exception):
    """The data directory is missing, not a directory, or holds no store."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def create_data_dir(data_dir: Path) -> None:
    """Make ``data_dir`` (mode 0700) if missing."""
    if data_dir.exists() and not data_dir.is_dir():
        raise DataDirError(f"data directory {data_dir} is not a directory", EX_CANTCREAT)
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise DataDirError(
            f"cannot create data directory {data_dir}: {e.strerror or e}", EX_CANTCREAT
        ) from e


def require_store(data_dir: Path, db_path: Path) -> None:
    """Refuse unless ``data_dir`` is a directory holding the store ``db_path``."""
    if not data_dir.is_dir():
        what = "is not a directory" if data_dir.exists() else "does not exist"
        raise DataDirError(f"data directory {data_dir} {what}", EX_NOINPUT)
    if not db_path.is_file():
        raise DataDirError(
            f"no pushmail store in {data_dir} (wrong --data-dir? "
            "'pushmail user add' or 'pushmail serve' creates one)",
            EX_NOINPUT,
        )
