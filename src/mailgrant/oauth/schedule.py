"""When a grant is refreshed: ahead of expiry while it is in use, to keep it alive while idle.

The arithmetic, for an access token of lifetime L seconds:

- The broker's margin M = min(MAILGRANT_REFRESH_MARGIN, L / 10): a token with no more than M
  left is not handed out (oauth.broker.tokens_usable), the caller refreshes it itself.
- A caller in use asks at most a minute of validity (a mail login does): V = min(60, L -
  MAILGRANT_REFRESH_MIN_INTERVAL), as `_validity_wanted` caps it.
- The worker refreshes a grant in use A = max(M, V) + lead seconds before expiry, lead =
  min(60, L / 10) being the worker's slack (a round, a slow token endpoint). So the worker's
  refresh always comes before any caller finds the token inside its margin: callers never
  wait on the provider.
- A grant in use is thus refreshed every L - A seconds whatever its callers do: for L = 60
  (M = 6, V = 0, lead = 6) every 48 s, 1.25 refreshes per lifetime; for Microsoft's L = 3600
  to 5400 (M = 300, V = 60, lead = 60) every 3240 s or more, 1.1 per lifetime. A mailbox
  polled every 10 s costs that, never a refresh per poll. (With the old cap of L / 2 on the
  margin, a short-lived token was refreshed at least twice per lifetime.)
- A grant not in use is refreshed only to keep its refresh token alive (Microsoft's die after
  90 idle days), every MAILGRANT_KEEPALIVE (7 days) moved earlier by up to a tenth
  (common.health.jittered): 10,000 grants validated together spread over 17 hours instead of
  refreshing in the same second. A broker caller of an idle grant refreshes on demand, and its
  use brings the refresh ahead back (`refresh_ahead_at`).
- "In use" means used (a token handed out or a mail login) within the last two lifetimes, and
  at least USE_PRECISION * 2 (last use is recorded at most once a minute per process)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings

from mailgrant.common.health import jittered
from mailgrant.oauth.protocol import TokenSet

# A caller's usual ask for validity, in seconds (a mail login's, mailboxes.services.login).
USUAL_VALIDITY = 60.0
# How often one process records a grant's use (Grant.last_used_at), at most.
USE_PRECISION = 60.0


def refresh_margin(tokens: TokenSet) -> float:
    """M: a token with no more than this left is refreshed before it is handed out."""
    lifetime = tokens.lifetime
    margin = float(settings.MAILGRANT_REFRESH_MARGIN)
    return margin if lifetime is None else min(margin, lifetime / 10)


def validity_wanted(tokens: TokenSet, min_valid_seconds: float) -> float:
    """`min_valid_seconds`, but no more than a token of this lifetime has left once it is
    MAILGRANT_REFRESH_MIN_INTERVAL old: a caller asking more than the provider gives then gets
    the provider's token, refreshed at most once an interval, not on every call."""
    lifetime = tokens.lifetime
    if lifetime is None:
        return min_valid_seconds
    return min(min_valid_seconds, lifetime - float(settings.MAILGRANT_REFRESH_MIN_INTERVAL))


def refresh_ahead_seconds(tokens: TokenSet) -> float:
    """A: how long before expiry the worker refreshes a grant in use."""
    lifetime = tokens.lifetime or 0.0
    lead = min(60.0, lifetime / 10)
    return max(refresh_margin(tokens), validity_wanted(tokens, USUAL_VALIDITY)) + lead


def refresh_ahead_at(tokens: TokenSet) -> datetime | None:
    """When the worker refreshes a grant in use holding `tokens`; None for a token without an
    expiry (used until refused)."""
    if tokens.expires_at is None:
        return None
    return datetime.fromtimestamp(tokens.expires_at - refresh_ahead_seconds(tokens), tz=UTC)


def keepalive_seconds() -> float:
    return float(settings.MAILGRANT_KEEPALIVE)


def in_use(*, tokens: TokenSet, last_used_at: datetime | None, now: datetime) -> bool:
    if last_used_at is None:
        return False
    window = max(2 * (tokens.lifetime or 0.0), 2 * USE_PRECISION)
    return last_used_at >= now - timedelta(seconds=window)


def next_refresh_at(
    *, tokens: TokenSet | None, last_used_at: datetime | None, now: datetime
) -> datetime | None:
    """When the worker refreshes a grant next (after a refresh or an authorization at `now`);
    None when it cannot be refreshed (no refresh token)."""
    if tokens is None or not tokens.refresh_token:
        return None
    keepalive = now + timedelta(seconds=jittered(keepalive_seconds()))
    if not in_use(tokens=tokens, last_used_at=last_used_at, now=now):
        return keepalive
    ahead = refresh_ahead_at(tokens)
    return keepalive if ahead is None else min(max(ahead, now), keepalive)
