"""LDAP directories whose people are imported as users, and the accounts they imported.

The tables kept the names they had when directories were part of single sign-on."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from mailgrant.common.fields import SealedField
from mailgrant.common.models import HealthTracked


def default_attribute_map() -> dict[str, str]:
    return {
        "username": "uid",
        "email": "mail",
        "first_name": "givenName",
        "last_name": "sn",
    }


class LdapDirectory(HealthTracked):
    """A directory whose people are imported (read-only) as users and linked to SSO sign-ins."""

    health_events = {
        "failing": "directory.sync_failed",
        "needs_reauthorization": "directory.sync_failed",
        "recovered": "directory.recovered",
    }

    class Security(models.TextChoices):
        NONE = "none", "None (plain LDAP)"
        STARTTLS = "starttls", "StartTLS"
        LDAPS = "ldaps", "LDAPS (TLS from the start)"

    class Status(models.TextChoices):
        ENABLED = "enabled", "Enabled"
        DISABLED = "disabled", "Disabled"

    name = models.CharField(max_length=200, unique=True)
    server_uri = models.CharField(
        "Server URI", max_length=500, help_text="e.g. ldap://ldap.example.com:389"
    )
    security = models.CharField(max_length=10, choices=Security.choices, default=Security.STARTTLS)
    verify_ssl = models.BooleanField("Verify SSL", default=True)
    ca_certificate = models.TextField(
        "CA certificate",
        blank=True,
        help_text="PEM of the CA that signed the server's certificate, when the system does not "
        "trust it already (an internal CA). Empty: the system's CAs.",
    )
    bind_dn = models.CharField("Bind DN", max_length=500, blank=True)
    bind_password = SealedField(
        blank=True, help_text="Write-only: stored encrypted, never shown again."
    )
    base_dn = models.CharField("Base DN", max_length=500)
    user_filter = models.CharField(
        max_length=1000,
        default="(objectClass=inetOrgPerson)",
        help_text="LDAP filter selecting the people to import.",
    )
    disabled_filter = models.CharField(
        max_length=1000,
        blank=True,
        help_text="LDAP filter matching disabled people, e.g. (pwdAccountLockedTime=*) or, on "
        "Active Directory, (userAccountControl:1.2.840.113556.1.4.803:=2). Empty: none.",
    )
    attribute_map = models.JSONField(
        default=default_attribute_map,
        blank=True,
        help_text='User field <- LDAP attribute, e.g. {"username": "uid", "email": "mail"}.',
    )
    sync_interval = models.PositiveIntegerField(
        "Sync every (minutes)", default=60, help_text="0: only when asked (button or CLI)."
    )
    show_in_login = models.BooleanField(
        default=False,
        help_text="Its people may sign in on the login page with their directory password.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ENABLED)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_summary = models.CharField(max_length=500, blank=True)
    last_error = models.TextField(blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    next_sync_at = models.DateTimeField(
        null=True, blank=True, help_text="When the worker syncs next (sooner after a failure)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "sso_ldapdirectory"
        ordering = ["name"]
        verbose_name = "LDAP directory"
        verbose_name_plural = "LDAP directories"

    def __str__(self) -> str:
        return self.name

    @property
    def is_enabled(self) -> bool:
        return self.status == self.Status.ENABLED


class DirectoryAccount(models.Model):
    """A user imported from a directory: the link the sync keeps and SSO sign-ins follow."""

    directory = models.ForeignKey(LdapDirectory, on_delete=models.CASCADE, related_name="accounts")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="directory_account"
    )
    username = models.CharField(max_length=150)
    dn = models.CharField("DN", max_length=1000)
    is_disabled = models.BooleanField(default=False)
    synced_at = models.DateTimeField()

    class Meta:
        db_table = "sso_directoryaccount"
        ordering = ["directory__name", "username"]
        constraints = [
            models.UniqueConstraint(
                fields=["directory", "username"], name="one_account_per_directory_username"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.directory.name}: {self.username}"
