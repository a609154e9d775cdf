from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from mailgrant.api.models import ApiKey
from mailgrant.api.services import apikey_revoke
from mailgrant.common.audit import Actor


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created with `mailgrant apikey create` (the key is shown once there)."""

    list_display = [
        "name",
        "prefix",
        "scopes",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix"]
    readonly_fields = [
        "name",
        "prefix",
        "scopes",
        "created_at",
        "created_by",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    exclude = ["key_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset.filter(revoked_at__isnull=True):
            apikey_revoke(key=key, actor=Actor.of(request.user))
        self.message_user(request, "Revoked.")
