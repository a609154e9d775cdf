"""Claiming due rows for one worker, so that any number of workers share the work.

On PostgreSQL the due rows are locked with `FOR UPDATE SKIP LOCKED` (workers claiming at the
same moment take different rows, none waits) and marked in the same short transaction. On
SQLite, which has one writer at a time, each row is taken by a conditional update that only
succeeds while the row is still as this worker read it.

A claim is a lease: `until` a time the holder renews while it works (`claims_renew`), so a
worker that dies loses its rows when its lease runs out, and nobody else's work is ever taken
while its holder lives."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection, transaction
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
    if connection.vendor == "postgresql":
        with transaction.atomic():
            ids = list(
                due.filter(free)
                .order_by(order_by)
                .select_for_update(skip_locked=True, of=("self",))
                .values_list("pk", flat=True)[:limit]
            )
            if ids:
                model._default_manager.filter(pk__in=ids).update(**changes)
        return ids
    taken: list[int] = []
    # Read a few more than wanted: some are taken by others between this read and the update.
    candidates = due.filter(free).order_by(order_by).values_list("pk", until_field)
    for pk, seen_until in candidates[: limit * 2]:
        same = (
            Q(**{f"{until_field}__isnull": True})
            if seen_until is None
            else Q(**{until_field: seen_until})
        )
        if model._default_manager.filter(same, pk=pk).update(**changes) == 1:
            taken.append(pk)
            if len(taken) >= limit:
                break
    return taken


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
