"""SQLite checkpoints from a serving process's thread (mailgrant.common.checkpoint)."""

import pytest
from django.db import connection

from mailgrant.common import checkpoint

pytestmark = pytest.mark.django_db(transaction=True)  # a checkpoint runs outside transactions


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's write-ahead log only")
def test_serving_connections_leave_checkpoints_to_the_thread() -> None:
    checkpoint._raise_threshold(sender=None, connection=connection)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint")
        assert cursor.fetchone()[0] == checkpoint.FALLBACK_PAGES
        cursor.execute("PRAGMA wal_autocheckpoint=1000")  # as other processes keep it
    busy, log, copied = checkpoint.sqlite_checkpoint()
    assert busy == 0 and copied <= log
