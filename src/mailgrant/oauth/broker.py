"""The token of grant N as one read: the token broker's hot path.

One indexed read on the driver's cursor (common.sql): the ORM's query building and model
instances cost many times the read itself (bench/broker.py). Only the current token set is
decrypted; the original set and the client secret are not read. The SQL is built from the
models' own table and column names, so a renamed field changes it too."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.db.models import Case, F, Value, When
from django.utils import timezone

from mailgrant.common import sql
from mailgrant.common.fields import Sealed
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.oauth.protocol import TokenSet
from mailgrant.oauth.schedule import (
    USE_PRECISION,
    refresh_ahead_at,
    refresh_margin,
    validity_wanted,
)


class GrantRow(NamedTuple):
    """What the broker reads of a grant and its client, in this order."""

    state: str
    token_set: Any  # the sealed token set as stored
    account: str
    client_name: str
    client_status: str


# GrantRow's columns: (model, field) each.
_COLUMNS = (
    (Grant, "state"),
    (Grant, "token_set"),
    (Grant, "account"),
    (OAuthClient, "name"),
    (OAuthClient, "status"),
)


def grant_row_sql() -> tuple[str, str, str]:
    """(select list, from clause, where condition with one %s for the grant's id) reading a
    GrantRow: for a statement of its own, or joined into another (the API key's,
    api.services)."""
    alias = {Grant: "g", OAuthClient: "c"}
    select = ", ".join(
        f"{alias[model]}.{model._meta.get_field(name).column}"  # type: ignore[union-attr]
        for model, name in _COLUMNS
    )
    client_fk = Grant._meta.get_field("client").column  # type: ignore[union-attr]
    joins = (
        f"{Grant._meta.db_table} g JOIN {OAuthClient._meta.db_table} c "
        f"ON c.{OAuthClient._meta.pk.column} = g.{client_fk}"  # type: ignore[union-attr]
    )
    where = f"g.{Grant._meta.pk.column} = %s"  # type: ignore[union-attr]
    return select, joins, where


@functools.cache
def _grant_sql() -> str:
    select, joins, where = grant_row_sql()
    return f"SELECT {select} FROM {joins} WHERE {where}"  # noqa: S608


def tokens_usable(
    *, state: str, client_enabled: bool, tokens: TokenSet | None, min_valid_seconds: float
) -> bool:
    """True when `tokens` may be handed out as they are: the client is enabled, the grant
    authorized, and the access token valid for longer than both `min_valid_seconds` (as far
    as the provider's lifetime allows, `validity_wanted`) and the refresh margin (oauth.schedule
    explains both, and why the worker refreshes a grant in use before either is reached)."""
    if not client_enabled or state != Grant.State.AUTHORIZED or tokens is None:
        return False
    if tokens.expires_at is None:
        return True  # the provider gave no lifetime: use it until refused
    remaining = tokens.expires_at - timezone.now().timestamp()
    return remaining > max(refresh_margin(tokens), validity_wanted(tokens, min_valid_seconds))


@dataclass(frozen=True)
class CachedToken:
    tokens: TokenSet
    grant_name: str  # str(grant), for the audit row


def grant_cached_token(*, grant_id: int, min_valid_seconds: float = 0) -> CachedToken | None:
    """The grant's stored tokens when they can be handed out as they are (`tokens_usable`);
    None when the grant must be refreshed or its trouble reported (the services' slow path).
    Raises Grant.DoesNotExist for an unknown grant."""
    found = sql.execute(_grant_sql(), [grant_id]).fetchone() if grant_id <= sql.MAX_ID else None
    if found is None:
        raise Grant.DoesNotExist(f"No grant {grant_id}.")
    cached = cached_token_of(row=GrantRow(*found), min_valid_seconds=min_valid_seconds)
    if cached is not None:
        grant_used(grant_id=grant_id, tokens=cached.tokens)
    return cached


def cached_token_of(*, row: GrantRow, min_valid_seconds: float) -> CachedToken | None:
    """`grant_cached_token` of a row read elsewhere (joined into another statement)."""
    if (
        row.state != Grant.State.AUTHORIZED
        or row.client_status != OAuthClient.Status.ENABLED
        or not row.token_set
    ):
        return None
    tokens = TokenSet.from_dict(Sealed(row.token_set).reveal_json())
    if not tokens_usable(
        state=row.state, client_enabled=True, tokens=tokens, min_valid_seconds=min_valid_seconds
    ):
        return None
    return CachedToken(
        tokens=tokens, grant_name=Grant.describe(client_name=row.client_name, account=row.account)
    )


# Grant id -> when this process last recorded its use (time.monotonic()).
_USE_RECORDED: dict[int, float] = {}


def grant_used(*, grant_id: int, tokens: TokenSet) -> None:
    """Note that the grant's token was handed out or used, at most once a USE_PRECISION per
    grant in this process (no statement at all otherwise: the broker stays one read). A grant
    coming into use gets its refresh ahead of expiry (oauth.schedule) instead of waiting for
    its keep-alive, so its callers never wait on the provider."""
    now = time.monotonic()
    last = _USE_RECORDED.get(grant_id)
    if last is not None and now - last < USE_PRECISION:
        return
    _USE_RECORDED[grant_id] = now
    changes: dict[str, Any] = {"last_used_at": timezone.now()}
    ahead = refresh_ahead_at(tokens)
    if ahead is not None:
        # Only earlier, never from none: a grant that must not be refreshed stays so.
        changes["next_refresh_at"] = Case(
            When(next_refresh_at__gt=ahead, then=Value(ahead)), default=F("next_refresh_at")
        )
    Grant.objects.filter(pk=grant_id).update(**changes)


def grant_use_forget() -> None:
    """Forget which uses this process recorded (tests)."""
    _USE_RECORDED.clear()
