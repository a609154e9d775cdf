"""Claiming due rows for one worker, so that any number of workers share the work.

The due rows are read and marked in one short transaction. On PostgreSQL the read locks them
with `FOR UPDATE SKIP LOCKED`: workers claiming at the same moment take different rows, none
waits. On SQLite the transaction begins IMMEDIATE (config.settings), which takes the database's
one write lock first: no other claim runs between the read and the mark.

A claim is a lease: `until` a time the holder renews while it works (`claims_renew`), so a
worker that dies loses its rows when its lease runs out, and nobody else's work is ever taken
while its holder lives."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.db.models import Model, Q, QuerySet


def claims_take(
    due: QuerySet[Any],
    *,
    worker: str,
    now: datetime,
    until: datetime,
    limit: int,
    order_by: str,
    by_field: str = "claimed_by",
    until_field: str = "claimed_until",
    extra: dict[str, Any] | None = None,
) -> list[int]:
    """The ids of up to `limit` rows of `due` (ordered by `order_by`) whose lease is free,
    now leased to `worker` until `until` (and `extra` fields set on them too)."""
    if limit <= 0:
        return []
    free = Q(**{f"{until_field}__isnull": True}) | Q(**{f"{until_field}__lt": now})
    changes = {by_field: worker, until_field: until, **(extra or {})}
    model: type[Model] = due.model
    with transaction.atomic(using=due.db):
        if connections[due.db].vendor == "sqlite":
            _require_immediate(due.db)
        ids = list(
            due.filter(free)
            .order_by(order_by)
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            model._default_manager.using(due.db).filter(pk__in=ids).update(**changes)
    return ids


def _require_immediate(alias: str) -> None:
    """A deferred SQLite transaction would read before it holds the write lock: two workers
    could then claim the same rows."""
    mode = connections[alias].settings_dict.get("OPTIONS", {}).get("transaction_mode")
    if mode != "IMMEDIATE":
        raise ImproperlyConfigured("SQLite claims need OPTIONS transaction_mode IMMEDIATE.")


def claims_renew(
    model: type[Model],
    *,
    worker: str,
    ids: Iterable[int],
    until: datetime,
    by_field: str = "claimed_by",
    until_field: str = "claimed_until",
) -> int:
    """Extend `worker`'s leases on `ids` to `until`; how many it still held."""
    ids = list(ids)
    if not ids:
        return 0
    return model._default_manager.filter(pk__in=ids, **{by_field: worker}).update(
        **{until_field: until}
    )


def claims_release(
    model: type[Model],
    *,
    worker: str,
    ids: Iterable[int],
    by_field: str = "claimed_by",
    until_field: str = "claimed_until",
    extra: dict[str, Any] | None = None,
) -> int:
    """End `worker`'s leases on `ids` (a lease it no longer holds is left alone)."""
    ids = list(ids)
    if not ids:
        return 0
    return model._default_manager.filter(pk__in=ids, **{by_field: worker}).update(
        **{by_field: "", until_field: None, **(extra or {})}
    )
