"""Hot-path SQL straight through the database driver's cursor, on Django's own connection.

The token broker runs a small SELECT on every call, and its audit INSERT where no audit spool
takes the row (bench/broker.py). Through Django's cursor wrapper (a new wrapper a statement,
placeholder conversion, error and debug hooks) each cost about 30 us more than on the driver's
cursor, where SQLite's indexed read takes 4 us and the INSERT with its commit 40 us.
Here the connection, its transaction and Django's error types stay Django's; only the wrapper
is skipped. These statements are therefore not in `connection.queries` (DEBUG) nor counted by
assertNumQueries. Write the SQL with %s placeholders, as for `cursor.execute`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

_converted: dict[str, str] = {}
# The largest id a database holds (a signed 64-bit integer): a larger one from a URL is no row,
# and not an OverflowError in the driver.
MAX_ID = 2**63 - 1


def execute(sql: str, params: Sequence[Any]) -> Any:
    """Run `sql` on the default database; the driver's cursor, to fetch from."""
    db = connections[DEFAULT_DB_ALIAS]
    db.ensure_connection()
    db.validate_no_broken_transaction()
    if db.vendor == "sqlite":  # the sqlite3 module's placeholder is ?
        sql = _converted.get(sql) or _converted.setdefault(sql, sql.replace("%s", "?"))
    with db.wrap_database_errors:
        cursor = db.connection.cursor()
        cursor.execute(sql, params)
    return cursor


def db_datetime(value: datetime) -> Any:
    """`value` as the database stores it (SQLite: naive UTC text, as Django writes it)."""
    return connections[DEFAULT_DB_ALIAS].ops.adapt_datetimefield_value(value)
