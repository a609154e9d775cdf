from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database for processes started by the test (LISTEN/NOTIFY is
    PostgreSQL's own)."""
    from tests.conftest import _postgres

    yield from _postgres(tmp_path)
