"""The admin's alert sections: channels (saved through their services), incidents and
notices (read-only: the worker writes them)."""

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from mailgrant.common.admin import ReadOnlyAdmin
from mailgrant.common.audit import Actor
from mailgrant.notify.alerts.channels import (
    CHANNEL_FIELDS,
    notification_channel_create,
    notification_channel_delete,
    notification_channel_errors,
    notification_channel_update,
)
from mailgrant.notify.models import (
    ALERT_HEALTHS,
    ALERT_KINDS,
    Incident,
    Notice,
    NotificationChannel,
)


class NotificationChannelForm(forms.ModelForm):
    recipients = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Email: one address a line.",
    )
    healths = forms.MultipleChoiceField(
        choices=[(h, h.replace("_", " ")) for h in ALERT_HEALTHS],
        widget=forms.CheckboxSelectMultiple,
        initial=list(ALERT_HEALTHS),
    )
    subject_kinds = forms.MultipleChoiceField(
        label="Objects",
        choices=[(k, k) for k in ALERT_KINDS],
        widget=forms.CheckboxSelectMultiple,
        initial=list(ALERT_KINDS),
    )

    class Meta:
        model = NotificationChannel
        fields = list(CHANNEL_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["recipients"] = "\n".join(self.instance.recipients)

    def clean_recipients(self) -> list[str]:
        text = self.cleaned_data.get("recipients") or ""
        return [line.strip() for line in text.splitlines() if line.strip()]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        candidate = NotificationChannel(pk=self.instance.pk)
        for name in CHANNEL_FIELDS:
            if name in cleaned:
                setattr(candidate, name, cleaned[name])
        for field, problem in notification_channel_errors(channel=candidate).items():
            if field in self.fields and field not in self.errors:
                self.add_error(field, problem)
        return cleaned


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    form = NotificationChannelForm
    list_display = ["name", "kind", "enabled", "to", "healths", "subject_kinds"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "enabled"]}),
        (
            "Email",
            {
                "fields": ["recipients", "mailbox"],
                "description": "Sent through the outgoing mailbox chosen, or Django's SMTP "
                "settings (MAILGRANT_EMAIL_*) when none is.",
            },
        ),
        ("Webhook", {"fields": ["endpoint"]}),
        (
            "What it hears about",
            {"fields": ["healths", "subject_kinds", "only_mailbox", "only_client"]},
        ),
    ]

    @admin.display(description="To")
    def to(self, channel: NotificationChannel) -> str:
        if channel.kind == NotificationChannel.Kind.WEBHOOK:
            return str(channel.endpoint or "-")
        return ", ".join(channel.recipients)

    def save_model(
        self, request: HttpRequest, obj: NotificationChannel, form: Any, change: bool
    ) -> None:
        values = {name: form.cleaned_data.get(name) for name in CHANNEL_FIELDS}
        actor = Actor.of(request.user)
        if change:
            saved = notification_channel_update(channel=obj, changes=values, actor=actor)
        else:
            saved = notification_channel_create(**values, actor=actor)
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: NotificationChannel) -> None:
        notification_channel_delete(channel=obj, actor=Actor.of(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for channel in queryset:
            notification_channel_delete(channel=channel, actor=Actor.of(request.user))


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin):
    list_display = [
        "subject_kind",
        "subject_name",
        "health",
        "reason",
        "since",
        "opened_at",
        "reminders",
        "resolved_at",
        "resolution",
    ]
    list_filter = ["subject_kind", "health", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["subject_name", "reason"]
    date_hierarchy = "opened_at"


@admin.register(Notice)
class NoticeAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "incident", "channel", "state", "attempts", "sent_at",
                    "last_error"]  # fmt: skip
    list_filter = ["state", "kind", "channel"]
    list_select_related = ["incident", "channel"]
