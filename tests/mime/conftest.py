"""The sample messages of ``tests/mime/data``, as a fixture.

They are kept with LF line ends for readability and served with CRLF, as a message
is stored after SMTP/LMTP delivery.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def _load(name: str, crlf: bool = True) -> bytes:
    raw = (DATA / f"{name}.eml").read_bytes()
    return raw.replace(b"\n", b"\r\n") if crlf else raw


@pytest.fixture(scope="session")
def eml() -> Callable[..., bytes]:
    return _load
