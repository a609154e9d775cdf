from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from mailgrant.common.admin import health_badge
from mailgrant.common.audit import Actor
from mailgrant.common.csp import allow_form_target
from mailgrant.common.errors import ServiceError
from mailgrant.mailboxes.forms import MailboxForm
from mailgrant.mailboxes.models import Mailbox, Message
from mailgrant.mailboxes.services.fetch_now import mailbox_fetch_now
from mailgrant.mailboxes.services.mailboxes import (
    mailbox_authorize_start,
    mailbox_delete,
    mailbox_save,
)
from mailgrant.mailboxes.services.test import mailbox_test
from mailgrant.oauth.selectors import oauth_client_authorize_url
from mailgrant.oauth.session import remember_binding


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
    class Media:
        js = ["mailgrant/mailbox.js"]  # only the fields that apply to the chosen settings
        css = {"all": ["mailgrant/admin.css"]}  # no inline style: the CSP allows none

    form = MailboxForm
    exclude = ["password"]  # the form's write-only field goes to the service, not the model
    list_display = [
        "name",
        "direction",
        "protocol",
        "username",
        "oauth_client",
        "enabled",
        "last_fetch_at",
        "health_column",
        "stored",
    ]
    list_filter = ["direction", "protocol", "auth_method", "enabled"]
    search_fields = ["name", "username", "host"]
    readonly_fields = ["last_fetch_at", "last_success_at", "last_error"]
    fieldsets = [
        (None, {"fields": ["name", "direction", "protocol", "enabled"]}),
        ("Server", {"fields": ["host", "port", "security"]}),
        (
            "Login",
            {
                "fields": [
                    "username",
                    "auth_method",
                    "password",
                    "oauth_client",
                    "grant",
                    "sasl_mechanism",
                    "smtp_username",
                ]
            },
        ),
        (
            "Fetching",
            {
                "fields": ["folder", "post_fetch_action", "poll_interval", "push"],
                "classes": ["mailgrant-incoming"],
            },
        ),
        ("Status", {"fields": ["last_fetch_at", "last_success_at", "last_error"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Mailbox]:
        return (
            super()
            .get_queryset(request)
            .select_related("oauth_client")
            .annotate(message_count=Count("messages"))
        )

    @admin.display(description="Health", ordering="health")
    def health_column(self, mailbox: Mailbox) -> str:
        return health_badge(mailbox)

    @admin.display(description="Stored", ordering="message_count")
    def stored(self, mailbox: Mailbox) -> int:
        return getattr(mailbox, "message_count", 0)

    def save_model(self, request: HttpRequest, obj: Mailbox, form: Any, change: bool) -> None:
        mailbox_save(
            mailbox=obj,
            password=form.cleaned_data.get("password") or None,
            actor=Actor.of(request.user),
        )
        if obj.save_notice:
            self.message_user(request, obj.save_notice, messages.WARNING)

    def delete_model(self, request: HttpRequest, obj: Mailbox) -> None:
        mailbox_delete(mailbox=obj, actor=Actor.of(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Mailbox]) -> None:
        for mailbox in queryset:
            mailbox_delete(mailbox=mailbox, actor=Actor.of(request.user))

    def render_change_form(
        self,
        request: HttpRequest,
        context: Any,
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        if obj is not None and obj.oauth_client_id:  # its Authorize button ends at the provider
            allow_form_target(request, oauth_client_authorize_url(client=obj.oauth_client))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("<id:object_id>/test/", wrap(self.test_view), name="mailboxes_mailbox_test"),
            path("<id:object_id>/fetch/", wrap(self.fetch_view), name="mailboxes_mailbox_fetch"),
            path(
                "<id:object_id>/authorize/",
                wrap(self.authorize_view),
                name="mailboxes_mailbox_authorize",
            ),
            *super().get_urls(),
        ]

    def _mailbox_for_post(self, request: HttpRequest, object_id: int) -> Mailbox | HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        mailbox = get_object_or_404(
            Mailbox.objects.select_related("oauth_client", "grant"), pk=object_id
        )
        if not self.has_change_permission(request, mailbox):
            return HttpResponse(status=403)
        return mailbox

    def _back(self, mailbox: Mailbox) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:mailboxes_mailbox_change", args=[mailbox.pk]))

    def test_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        mailbox = self._mailbox_for_post(request, object_id)
        if isinstance(mailbox, HttpResponse):
            return mailbox
        result = mailbox_test(mailbox=mailbox, actor=Actor.of(request.user))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": mailbox,
            "result": result,
            "title": f"Test of {mailbox}",
        }
        return TemplateResponse(request, "admin/mailboxes/mailbox/test_result.html", context)

    def fetch_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        mailbox = self._mailbox_for_post(request, object_id)
        if isinstance(mailbox, HttpResponse):
            return mailbox
        try:
            result = mailbox_fetch_now(mailbox=mailbox, actor=Actor.of(request.user))
        except ServiceError as exc:
            messages.error(request, f"Fetch failed: {exc.message}")
        else:
            messages.success(
                request,
                f"Fetched {result.fetched} new message(s) "
                f"({result.bytes} bytes); {result.actions} post-fetch "
                "action(s).",
            )
            for error in result.errors:
                messages.warning(request, error)
        return self._back(mailbox)

    def authorize_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        mailbox = self._mailbox_for_post(request, object_id)
        if isinstance(mailbox, HttpResponse):
            return mailbox
        try:
            started = mailbox_authorize_start(
                mailbox=mailbox,
                actor=Actor.of(request.user),
                return_url=reverse("admin:mailboxes_mailbox_change", args=[mailbox.pk]),
            )
        except ServiceError as exc:
            messages.error(request, f"Authorize failed: {exc.message}")
            return self._back(mailbox)
        remember_binding(request, started.binding)
        return HttpResponseRedirect(started.url)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["subject", "sender", "mailbox", "date", "size", "fetched_at"]
    list_filter = ["mailbox", "folder"]
    search_fields = ["subject", "sender", "recipients", "message_id"]
    readonly_fields = [f.name for f in Message._meta.concrete_fields if not f.primary_key]
    date_hierarchy = "fetched_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
