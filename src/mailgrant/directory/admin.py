"""Admin for LDAP directories (with Test connection and Sync now) and the accounts they
imported (read-only). Registered from SsoConfig.ready()."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from mailgrant.common.admin import health_badge
from mailgrant.common.audit import Actor
from mailgrant.directory.forms import LdapDirectoryForm
from mailgrant.directory.models import DirectoryAccount, LdapDirectory
from mailgrant.directory.selectors import ldap_directory_sync_events
from mailgrant.directory.services.directories import (
    ldap_directory_delete,
    ldap_directory_save,
    ldap_directory_test,
)
from mailgrant.directory.services.sync import ldap_directory_sync


@admin.register(LdapDirectory)
class LdapDirectoryAdmin(admin.ModelAdmin):
    class Media:
        css = {"all": ["mailgrant/admin.css"]}  # no inline style: the CSP allows none

    form = LdapDirectoryForm
    # The form's bind_password is write-only input for the service, never copied onto the model.
    exclude = ["bind_password"]
    list_display = [
        "name",
        "server_uri",
        "status",
        "health_column",
        "last_sync_at",
        "last_sync_summary",
        "error",
        "accounts",
    ]
    list_filter = ["status", "security", "show_in_login"]
    search_fields = ["name", "server_uri", "base_dn"]
    readonly_fields = ["last_sync_at", "last_sync_summary", "last_error", "recent_syncs"]
    fieldsets = [
        (None, {"fields": ["name", "status", "show_in_login"]}),
        ("Server", {"fields": ["server_uri", "security", "verify_ssl", "ca_certificate"]}),
        ("Bind", {"fields": ["bind_dn", "bind_password"]}),
        (
            "People",
            {
                "fields": ["base_dn", "user_filter", "disabled_filter", "attribute_map"],
                "description": "Users are imported read-only: each sync creates and updates "
                "them, and disables (never deletes) the ones the directory no longer lists or "
                "marks disabled. A username already taken by another user is a conflict.",
            },
        ),
        (
            "Sync",
            {
                "fields": [
                    "sync_interval",
                    "last_sync_at",
                    "last_sync_summary",
                    "last_error",
                    "recent_syncs",
                ]
            },
        ),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[LdapDirectory]:
        return super().get_queryset(request).annotate(account_count=Count("accounts"))

    @admin.display(description="Health", ordering="health")
    def health_column(self, directory: LdapDirectory) -> str:
        return health_badge(directory)

    @admin.display(description="Error")
    def error(self, directory: LdapDirectory) -> str:
        if not directory.last_error:
            return "-"
        return format_html(
            '<span title="{}" style="color:var(--error-fg)">{}</span>',
            directory.last_error,
            directory.last_error[:80],
        )

    @admin.display(description="Accounts", ordering="account_count")
    def accounts(self, directory: LdapDirectory) -> int:
        return getattr(directory, "account_count", 0)

    @admin.display(description="Recent syncs")
    def recent_syncs(self, directory: LdapDirectory) -> str:
        events = ldap_directory_sync_events(directory=directory) if directory.pk else []
        if not events:
            return "-"
        return format_html(
            "<table><tr><th>When</th><th>By</th><th>Outcome</th><th>Result</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                ((f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.outcome, e.message) for e in events),
            ),
        )

    def save_model(self, request: HttpRequest, obj: LdapDirectory, form: Any, change: bool) -> None:
        ldap_directory_save(
            directory=obj,
            bind_password=form.cleaned_data.get("bind_password") or None,
            actor=Actor.of(request.user),
        )

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Its accounts go with the directory (their users stay): no delete permission of their
        # own is asked for (they have none: the list is read-only).
        perms_needed.discard(DirectoryAccount._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: LdapDirectory) -> None:
        ldap_directory_delete(directory=obj, actor=Actor.of(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[LdapDirectory]) -> None:
        for directory in queryset:
            ldap_directory_delete(directory=directory, actor=Actor.of(request.user))

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("<id:object_id>/test/", wrap(self.test_view), name="directory_ldapdirectory_test"),
            path("<id:object_id>/sync/", wrap(self.sync_view), name="directory_ldapdirectory_sync"),
            *super().get_urls(),
        ]

    def _directory_for_post(
        self, request: HttpRequest, object_id: int
    ) -> LdapDirectory | HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        directory = get_object_or_404(LdapDirectory, pk=object_id)
        if not self.has_change_permission(request, directory):
            return HttpResponse(status=403)
        return directory

    def _back(self, directory: LdapDirectory) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse("admin:directory_ldapdirectory_change", args=[directory.pk])
        )

    def test_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        directory = self._directory_for_post(request, object_id)
        if isinstance(directory, HttpResponse):
            return directory
        result = ldap_directory_test(directory=directory)
        if result.ok:
            messages.success(request, result.message)
        else:
            messages.error(request, f"Test failed: {result.message}")
        return self._back(directory)

    def sync_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        directory = self._directory_for_post(request, object_id)
        if isinstance(directory, HttpResponse):
            return directory
        result = ldap_directory_sync(directory=directory, actor=Actor.of(request.user))
        if result.ok:
            messages.success(request, f"Synced: {result.summary}.")
            if result.conflicts:
                messages.warning(request, result.details)
        else:
            messages.error(request, f"Sync failed: {result.error}")
        return self._back(directory)


@admin.register(DirectoryAccount)
class DirectoryAccountAdmin(admin.ModelAdmin):
    """What the syncs imported: read-only (the directory is the source)."""

    list_display = ["username", "directory", "user", "is_disabled", "synced_at", "dn"]
    list_filter = ["directory", "is_disabled"]
    search_fields = ["username", "dn", "user__email"]
    list_select_related = ["directory", "user"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
