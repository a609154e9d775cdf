"""Why an LDAP directory is not ok: the reasons a sync can fail with, each with its fix, and
the classification of what the sync raised into one of them."""

from __future__ import annotations

from datetime import datetime, timedelta

from mailgrant.common.health import Health, Reason, backoff_seconds, reason_of, reason_register
from mailgrant.directory import ldap

reason_register(
    Reason(
        "ldap.bind_refused",
        Health.FAILING,
        "The directory refused the bind: check the bind DN and its password (an expired or "
        "locked service account fails the same way).",
    ),
    Reason(
        "ldap.unreachable",
        Health.FAILING,
        "The directory cannot be reached: check the server URI and port, that the server runs "
        "and that no firewall is in between. mailgrant tries again with backoff.",
        transient=True,
    ),
    Reason(
        "ldap.tls_failed",
        Health.FAILING,
        "TLS with the directory failed: check the security setting (StartTLS or LDAPS) against "
        "the port, and give the CA certificate when an internal CA signed the server's.",
    ),
    Reason(
        "ldap.search_failed",
        Health.FAILING,
        "The search failed: check the base DN, the user filter and that the bind DN may read "
        "the people below the base DN.",
    ),
    Reason(
        "ldap.config",
        Health.FAILING,
        "The directory's settings are incomplete (the bind password, the username attribute): "
        "Edit it.",
    ),
    Reason(
        "directory.disabled",
        Health.DISABLED,
        "The directory is disabled: it is not synced and its people cannot sign in with it.",
    ),
)

_KINDS = {
    "bind": "ldap.bind_refused",
    "unreachable": "ldap.unreachable",
    "tls": "ldap.tls_failed",
    "base_dn": "ldap.search_failed",
    "search": "ldap.search_failed",
    "filter": "ldap.search_failed",
    "ambiguous": "ldap.search_failed",
    "config": "ldap.config",
}
# The first wait after a transient failure, and the longest.
BACKOFF_BASE_SECONDS = 60.0
BACKOFF_CAP_SECONDS = 3600.0


def directory_disabled_reason() -> Reason:
    return reason_of("directory.disabled")


def directory_reason_of(exc: Exception) -> Reason:
    """The reason of what a sync raised (an LdapError by its kind; a bind password that
    cannot be opened is a setting to give again)."""
    if isinstance(exc, ldap.LdapError):
        return reason_of(_KINDS.get(exc.kind, "ldap.search_failed"))
    return reason_of("ldap.config")


def directory_next_sync(
    *, interval_minutes: int, now: datetime, failures: int = 0, reason: Reason | None = None
) -> datetime | None:
    """When the worker syncs next: on the interval; after a transient failure backed off
    (exponential with jitter from a minute, at most an hour), never later than the interval
    would be. None for a directory synced only on demand."""
    if interval_minutes <= 0:
        return None
    interval = interval_minutes * 60.0
    if reason is None or not reason.transient:
        return now + timedelta(seconds=interval)
    wait = backoff_seconds(
        failures, base=min(BACKOFF_BASE_SECONDS, interval), cap=min(BACKOFF_CAP_SECONDS, interval)
    )
    return now + timedelta(seconds=wait)
