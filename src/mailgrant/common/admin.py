from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from mailgrant.common.models import AuditEvent, HealthTracked


class ReadOnlyAdmin(admin.ModelAdmin):
    """A record the admin shows and never adds, changes or deletes (its services write it)."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The audit log: read-only, newest first."""

    list_display = ["at", "actor", "action", "target_repr", "outcome", "message"]
    list_filter = ["outcome", "action", "target_type"]
    search_fields = ["actor", "action", "target_repr", "message"]
    date_hierarchy = "at"


def health_badge(obj: HealthTracked) -> str:
    """A health for a list column: its label, coloured by admin.css, the hint on hover."""
    health = obj.health_state
    return format_html(
        '<span class="mailgrant-health-badge {}" title="{}">{}</span>',
        health.value,
        obj.health_hint or obj.health_reason,
        health.label,
    )


def health_detail(obj: HealthTracked) -> str:
    """A health for a detail page: its label, its reason code and its hint."""
    if not obj.health_reason:
        return format_html("{}", obj.health_state.label)
    return format_html(
        '{} <code>{}</code><div class="help">{}</div>',
        obj.health_state.label,
        obj.health_reason,
        obj.health_hint,
    )
