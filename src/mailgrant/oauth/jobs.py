"""OAuth's background work, run by the worker (mailgrant.worker.loop)."""

from __future__ import annotations

from mailgrant.oauth.services.authorization import authorization_purge_expired


def authorizations_purge_due() -> int:
    """Started authorizations a day past their expiry are deleted (kept that long for the API
    and the command line to read their outcome)."""
    return authorization_purge_expired()
