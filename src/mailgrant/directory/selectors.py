"""Reads for LDAP directories and the accounts imported from them."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db.models import Count, F, Q, QuerySet

from mailgrant.common.audit import AuditAction
from mailgrant.common.fields import reveal
from mailgrant.common.models import AuditEvent
from mailgrant.directory import ldap
from mailgrant.directory.models import DirectoryAccount, LdapDirectory

# The User fields a directory may fill, in the order they are shown.
USER_FIELDS = ("username", "email", "first_name", "last_name")


def ldap_directory_list() -> QuerySet[LdapDirectory]:
    return LdapDirectory.objects.annotate(account_count=Count("accounts")).order_by("name")


def ldap_directory_get_by_name(*, name: str) -> LdapDirectory:
    return LdapDirectory.objects.get(name=name)


def ldap_directories_due(*, now: datetime) -> QuerySet[LdapDirectory]:
    """Enabled directories with a sync interval whose next sync (on the interval, sooner or
    later after a failure) has come; one never synced is due at once."""
    return (
        LdapDirectory.objects.filter(status=LdapDirectory.Status.ENABLED, sync_interval__gt=0)
        .filter(Q(next_sync_at__isnull=True) | Q(next_sync_at__lte=now))
        .order_by(F("next_sync_at").asc(nulls_first=True), "pk")
    )


def ldap_directories_for_login() -> QuerySet[LdapDirectory]:
    """Directories whose people may sign in with their directory password."""
    return LdapDirectory.objects.filter(status=LdapDirectory.Status.ENABLED, show_in_login=True)


def directory_account_find(*, directory: LdapDirectory, username: str) -> DirectoryAccount | None:
    return (
        DirectoryAccount.objects.select_related("user", "directory")
        .filter(directory=directory, username__iexact=username)
        .first()
    )


def ldap_directory_sync_events(*, directory: LdapDirectory, limit: int = 10) -> list[AuditEvent]:
    """The audit rows of the directory's latest syncs, newest first."""
    return list(
        AuditEvent.objects.filter(
            Q(action=AuditAction.LDAP_DIRECTORY_SYNCED)
            | Q(action=AuditAction.LDAP_DIRECTORY_SYNC_FAILED),
            target_type=LdapDirectory._meta.label_lower,
            target_id=str(directory.pk),
        )[:limit]
    )


def ldap_directory_config(*, directory: LdapDirectory) -> ldap.DirectoryConfig:
    """What the protocol code needs; opens the bind password (VaultError when it cannot)."""
    return ldap.DirectoryConfig(
        server_uri=directory.server_uri,
        base_dn=directory.base_dn,
        security=directory.security,
        verify_ssl=directory.verify_ssl,
        ca_certificate=directory.ca_certificate,
        bind_dn=directory.bind_dn,
        bind_password=reveal(directory.bind_password),
        user_filter=directory.user_filter,
        disabled_filter=directory.disabled_filter,
        timeout=settings.MAILGRANT_LDAP_TIMEOUT,
    )


def ldap_directory_attribute_map(*, directory: LdapDirectory) -> dict[str, str]:
    """User field -> LDAP attribute, only the fields a directory may fill."""
    mapping = directory.attribute_map if isinstance(directory.attribute_map, dict) else {}
    return {f: str(mapping[f]) for f in USER_FIELDS if mapping.get(f)}
