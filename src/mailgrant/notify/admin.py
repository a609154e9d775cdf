"""The admin of webhook endpoints (the signing secret shown once, on the page that answers its
creation or rotation, and stored nowhere else on the way), their deliveries (read-only, with
each attempt; Redeliver) and the events (read-only)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html

from mailgrant.common.admin import ReadOnlyAdmin, health_badge, health_detail
from mailgrant.common.audit import Actor
from mailgrant.common.errors import ServiceError
from mailgrant.common.events import event_body, event_types_valid
from mailgrant.common.models import Event
from mailgrant.notify import admin_alerts  # noqa: F401 - registers the alert sections
from mailgrant.notify.models import Delivery, DeliveryAttempt, WebhookEndpoint
from mailgrant.notify.services.deliveries import delivery_redeliver
from mailgrant.notify.services.endpoints import (
    EDITABLE,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_errors,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_test,
    webhook_endpoint_update,
)

FORM_FIELDS = list(EDITABLE)


class EventTypesField(forms.CharField):
    """Event types as text, separated by commas or spaces; empty: every type."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        names = [n for n in text.replace(",", " ").split() if n]
        bad = event_types_valid(names)
        if bad:
            raise forms.ValidationError(f"No such event type: {', '.join(bad)}.")
        return list(dict.fromkeys(names))


class WebhookEndpointForm(forms.ModelForm):
    event_types = EventTypesField(
        required=False,
        help_text="e.g. message.received, grant.* (a family); empty: every type.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = FORM_FIELDS

    def clean_url(self) -> str:
        url = str(self.cleaned_data.get("url") or "")
        if not url.startswith(("http://", "https://")):
            raise forms.ValidationError("An http:// or https:// URL.")
        return url

    def clean(self) -> dict[str, Any]:
        """The service's own rules (the address the URL resolves to, a name taken ...) shown
        on the form, beside their fields, before anything is saved."""
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        values = form_values(cleaned)
        endpoint = self.instance if self.instance.pk else None
        for field, problem in webhook_endpoint_errors(endpoint=endpoint, values=values).items():
            self.add_error(field if field in self.fields else None, problem)
        return cleaned


def form_values(cleaned: dict[str, Any]) -> dict[str, Any]:
    """The form's values as the services take them (a mailbox or client by id)."""
    values = {f: cleaned[f] for f in FORM_FIELDS if f in cleaned}
    for field in ("mailbox", "client"):
        if field in values:
            values[field] = values[field].pk if values[field] is not None else None
    return values


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = [
        "name",
        "url",
        "enabled",
        "health_column",
        "event_types_shown",
        "last_success_at",
        "failing_since",
    ]
    list_filter = ["enabled", "health"]
    search_fields = ["name", "url"]
    actions = ["send_test", "rotate_secret"]
    readonly_fields = [
        "health_shown",
        "has_secret",
        "disabled_reason",
        "failing_since",
        "last_success_at",
    ]

    class Media:
        css = {"all": ["mailgrant/admin.css"]}

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return FORM_FIELDS
        return [*self.readonly_fields, *FORM_FIELDS]

    @admin.display(description="Health", ordering="health")
    def health_column(self, endpoint: WebhookEndpoint) -> str:
        return health_badge(endpoint)

    @admin.display(description="Health")
    def health_shown(self, endpoint: WebhookEndpoint) -> str:
        return health_detail(endpoint)

    @admin.display(description="Event types")
    def event_types_shown(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.event_types or []) or "all"

    @admin.display(description="Signing secret", boolean=True)
    def has_secret(self, endpoint: WebhookEndpoint) -> bool:
        return bool(endpoint.secret)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        values = form_values(form.cleaned_data)
        actor = Actor.of(request.user)
        if change:
            webhook_endpoint_update(endpoint=obj, values=values, actor=actor)
            return
        endpoint, secret = webhook_endpoint_create(values=values, actor=actor)
        obj.pk, obj._state.adding = endpoint.pk, False
        request._webhook_secret = secret  # type: ignore[attr-defined]  # for response_add

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: Any = None) -> Any:
        secret = getattr(request, "_webhook_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        messages.success(request, f"Added the webhook endpoint “{obj}”.")
        return self._secret_once(request, obj, secret)

    def _secret_once(self, request: HttpRequest, endpoint: Any, secret: str) -> HttpResponse:
        """A page of its own, rendered in this response: the secret never waits in a message
        store (a cookie, the session) for a later page."""
        response = TemplateResponse(
            request,
            "admin/notify/webhookendpoint/secret_once.html",
            {**self.admin_site.each_context(request), "endpoint": endpoint, "secret": secret},
        )
        response["Cache-Control"] = "no-store"
        return response

    def delete_model(self, request: HttpRequest, obj: WebhookEndpoint) -> None:
        webhook_endpoint_delete(endpoint=obj, actor=Actor.of(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhook_endpoint_delete(endpoint=endpoint, actor=Actor.of(request.user))

    @admin.action(description="Send a test event", permissions=["change"])
    def send_test(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhook_endpoint_test(endpoint=endpoint, actor=Actor.of(request.user))
        self.message_user(request, f"Queued a test event for {len(queryset)} endpoint(s).")

    @admin.action(description="Rotate the signing secret (one endpoint)", permissions=["change"])
    def rotate_secret(
        self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]
    ) -> HttpResponse | None:
        if len(queryset) != 1:
            self.message_user(request, "Rotate one endpoint's secret at a time.", messages.ERROR)
            return None
        endpoint = queryset[0]
        endpoint, secret = webhook_endpoint_rotate_secret(
            endpoint=endpoint, actor=Actor.of(request.user)
        )
        messages.success(request, f"A new signing secret for “{endpoint}”; the old one stopped.")
        return self._secret_once(request, endpoint, secret)


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["at", "status_code", "duration_ms", "response_head", "error"]
    readonly_fields = ["at", "status_code", "duration_ms", "response_head", "error"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "event_uid",
        "event_type",
        "endpoint",
        "state",
        "attempts",
        "last_status",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["state", "endpoint", "event__type"]
    search_fields = ["event__uid", "endpoint__name"]
    list_select_related = ["event", "endpoint"]
    inlines = [DeliveryAttemptInline]
    actions = ["redeliver"]
    fields = [
        "endpoint",
        "event_uid",
        "event_type",
        "state",
        "attempts",
        "next_attempt_at",
        "created_at",
        "delivered_at",
        "last_status",
        "last_error",
    ]
    readonly_fields = fields  # type: ignore[assignment]

    @admin.display(description="Event", ordering="event__uid")
    def event_uid(self, delivery: Delivery) -> str:
        return delivery.event.uid

    @admin.display(description="Type", ordering="event__type")
    def event_type(self, delivery: Delivery) -> str:
        return delivery.event.type

    def has_redeliver_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("notify.change_delivery"))

    @admin.action(description="Redeliver (same webhook-id)", permissions=["redeliver"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        for delivery in queryset.select_related("event", "endpoint"):
            try:
                delivery_redeliver(delivery=delivery, actor=Actor.of(request.user))
            except ServiceError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return
        self.message_user(request, f"{len(queryset)} delivery(ies) due again.")


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    """The outbox, as webhooks deliver it and GET /api/v1/events lists it."""

    list_display = ["created_at", "uid", "type", "subject_name", "sequence", "dispatched"]
    list_filter = ["type", "dispatched"]
    search_fields = ["uid", "subject_name", "subject_id"]
    date_hierarchy = "created_at"
    fields = [
        "uid",
        "type",
        "created_at",
        "subject_type",
        "subject_id",
        "subject_name",
        "mailbox_ref",
        "client_ref",
        "sequence",
        "dispatched",
        "body",
    ]
    readonly_fields = fields  # type: ignore[assignment]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Body (as delivered)")
    def body(self, event: Event) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event_body(event), indent=2))
