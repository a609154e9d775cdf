from django.contrib import admin
from django.http import HttpRequest

from mailgrant.common.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit log: read-only, newest first."""

    list_display = ["at", "actor", "action", "target_repr", "outcome", "message"]
    list_filter = ["outcome", "action", "target_type"]
    search_fields = ["actor", "action", "target_repr", "message"]
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
