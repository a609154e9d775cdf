"""The refresh schedule's arithmetic (oauth.schedule): the worker refreshes a grant in use
before any caller finds its token inside the margin, about once per lifetime; an idle grant is
kept alive within MAILGRANT_KEEPALIVE, spread out."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from mailgrant.oauth import schedule
from mailgrant.oauth.protocol import TokenSet


def _tokens(lifetime: float, *, refresh: bool = True) -> TokenSet:
    now = time.time()
    return TokenSet(
        access_token="at",
        refresh_token="rt" if refresh else None,
        expires_at=now + lifetime,
        obtained_at=now,
    )


@pytest.mark.parametrize("lifetime", [15, 60, 120, 600, 3600, 5400, 86400])
def test_the_worker_comes_before_the_margin_and_about_once_a_lifetime(lifetime, settings):
    tokens = _tokens(lifetime)
    ahead = schedule.refresh_ahead_seconds(tokens)
    # A caller asking the usual minute finds the token usable until the worker refreshed it.
    wanted = schedule.validity_wanted(tokens, schedule.USUAL_VALIDITY)
    assert ahead > max(schedule.refresh_margin(tokens), wanted)
    per_lifetime = lifetime / (lifetime - ahead)
    # Tokens of two minutes or less with callers wanting a minute of them cost more.
    assert per_lifetime <= (2.5 if lifetime <= 120 else 1.25), per_lifetime


def test_in_use_is_refreshed_ahead_idle_is_kept_alive(settings) -> None:
    settings.MAILGRANT_KEEPALIVE = 7 * 24 * 3600
    now = datetime.now(tz=UTC)
    tokens = _tokens(3600)
    used = schedule.next_refresh_at(tokens=tokens, last_used_at=now, now=now)
    assert used == schedule.refresh_ahead_at(tokens)
    idle = schedule.next_refresh_at(tokens=tokens, last_used_at=now - timedelta(hours=3), now=now)
    assert now + timedelta(days=6.3) <= idle <= now + timedelta(days=7)
    assert schedule.next_refresh_at(tokens=tokens, last_used_at=None, now=now) > now + timedelta(
        days=6
    )
    no_refresh = _tokens(3600, refresh=False)
    assert schedule.next_refresh_at(tokens=no_refresh, last_used_at=now, now=now) is None


def test_ten_thousand_keepalives_spread_out(settings) -> None:
    settings.MAILGRANT_KEEPALIVE = 7 * 24 * 3600
    random.seed(12)
    now = datetime.now(tz=UTC)
    tokens = _tokens(3600)
    seconds = {
        int(schedule.next_refresh_at(tokens=tokens, last_used_at=None, now=now).timestamp())
        for _ in range(10_000)
    }
    assert len(seconds) > 9_000  # hardly two in the same second
