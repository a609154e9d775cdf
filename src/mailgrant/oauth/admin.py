from typing import Any

from django.contrib import admin, messages
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from mailgrant.common.admin import health_badge, health_detail
from mailgrant.common.audit import Actor
from mailgrant.common.csp import allow_form_target
from mailgrant.common.errors import ServiceError
from mailgrant.oauth.forms import OAuthClientForm
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.oauth.selectors import oauth_client_authorize_url, oauth_client_redirect_uri
from mailgrant.oauth.services.authorization import authorization_start
from mailgrant.oauth.services.clients import (
    oauth_client_delete,
    oauth_client_save,
    oauth_client_set_status,
)
from mailgrant.oauth.services.grants import grant_delete
from mailgrant.oauth.services.tokens import grant_refresh
from mailgrant.oauth.session import remember_binding

GRANT_FIELDS = [
    "account",
    "state",
    "health_shown",
    "expires_at",
    "last_refresh_at",
    "next_refresh_at",
    "last_error",
    "is_default",
]


class GrantInline(admin.TabularInline):
    model = Grant
    fields = [*GRANT_FIELDS, "revalidate"]
    readonly_fields = [*GRANT_FIELDS, "revalidate"]
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Health")
    def health_shown(self, grant: Grant) -> str:
        return health_detail(grant)

    @admin.display(description="")
    def revalidate(self, grant: Grant) -> str:
        return format_html(
            '<button type="submit" form="mailgrant-validate" name="grant" value="{}" '
            'class="button">Validate again</button>',
            grant.pk,
        )


def _default_grant(field: str) -> Subquery:
    return Subquery(Grant.objects.filter(client=OuterRef("pk"), is_default=True).values(field)[:1])


@admin.register(OAuthClient)
class OAuthClientAdmin(admin.ModelAdmin):
    form = OAuthClientForm
    # The form's client_secret is write-only input for the service, never copied onto the model.
    exclude = ["client_secret"]
    list_display = [
        "name",
        "provider",
        "type",
        "status",
        "health_column",
        "grant_state",
        "grant_expires_at",
        "secret_expires_at",
    ]
    list_filter = ["provider", "type", "status"]
    search_fields = ["name", "client_id", "grants__account"]
    actions = ["enable", "disable"]
    readonly_fields = ["redirect_uri", "health_shown"]
    inlines = [GrantInline]
    fieldsets = [
        (None, {"fields": ["health_shown", "redirect_uri", "name", "provider", "type", "status"]}),
        (
            "Credentials",
            {
                "fields": [
                    "client_id",
                    "client_secret",
                    "secret_expires_at",
                    "tenant",
                    "issuer",
                ]
            },
        ),
        (
            "Endpoints and scope",
            {
                "fields": [
                    "scope",
                    "scope_separator",
                    "authorize_url",
                    "token_url",
                    "userinfo_endpoint",
                ],
                "description": "Empty fields use the provider's preset (or, for a generic "
                "provider, what OpenID discovery finds at the issuer).",
            },
        ),
        ("Connection", {"fields": ["proxy", "verify_ssl"]}),
    ]

    class Media:
        js = ["mailgrant/oauthclient.js"]
        css = {"all": ["mailgrant/admin.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[OAuthClient]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                default_grant_state=_default_grant("state"),
                default_grant_expires_at=_default_grant("expires_at"),
            )
        )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets: list[Any] = list(super().get_fieldsets(request, obj))
        if obj is None:  # the redirect URI exists once the client is saved
            first: dict[str, Any] = dict(fieldsets[0][1])
            first["fields"] = [
                f for f in first["fields"] if f not in ("redirect_uri", "health_shown")
            ]
            fieldsets[0] = (None, first)
        return fieldsets

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[Any]:
        return [GrantInline] if obj is not None else []

    @admin.display(description="Redirect URI")
    def redirect_uri(self, client: OAuthClient) -> str:
        uri = oauth_client_redirect_uri(client=client)
        return format_html(
            '<input type="text" readonly id="mailgrant-redirect-uri" value="{}" size="70"> '
            '<button type="button" class="button" data-copy="mailgrant-redirect-uri">Copy'
            '</button><div class="help">Register this exact URI at the provider.</div>',
            uri,
        )

    @admin.display(description="Health", ordering="health")
    def health_column(self, client: OAuthClient) -> str:
        return health_badge(client)

    @admin.display(description="Health")
    def health_shown(self, client: OAuthClient) -> str:
        return health_detail(client)

    @admin.display(description="Grant state", ordering="default_grant_state")
    def grant_state(self, client: OAuthClient) -> str:
        state = getattr(client, "default_grant_state", None)
        return Grant.State(state).label if state else "Not validated"

    @admin.display(description="Expires", ordering="default_grant_expires_at")
    def grant_expires_at(self, client: OAuthClient) -> Any:
        return getattr(client, "default_grant_expires_at", None) or "-"

    def save_model(self, request: HttpRequest, obj: OAuthClient, form: Any, change: bool) -> None:
        oauth_client_save(
            client=obj,
            client_secret=form.cleaned_data.get("client_secret") or None,
            actor=Actor.of(request.user),
        )
        if obj.save_notice:
            self.message_user(request, obj.save_notice, messages.WARNING)

    def delete_model(self, request: HttpRequest, obj: OAuthClient) -> None:
        oauth_client_delete(client=obj, actor=Actor.of(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[OAuthClient]) -> None:
        for client in queryset:
            oauth_client_delete(client=client, actor=Actor.of(request.user))

    @admin.action(description="Enable selected clients", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[OAuthClient]) -> None:
        for client in queryset:
            oauth_client_set_status(
                client=client, status=OAuthClient.Status.ENABLED, actor=Actor.of(request.user)
            )
        self.message_user(request, f"Enabled {len(queryset)} client(s).")

    @admin.action(description="Disable selected clients", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[OAuthClient]) -> None:
        for client in queryset:
            oauth_client_set_status(
                client=client, status=OAuthClient.Status.DISABLED, actor=Actor.of(request.user)
            )
        self.message_user(request, f"Disabled {len(queryset)} client(s).")

    def render_change_form(
        self,
        request: HttpRequest,
        context: Any,
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        if obj is not None and obj.pk:  # its Validate button ends at the provider
            allow_form_target(request, oauth_client_authorize_url(client=obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self) -> list[Any]:
        validate = self.admin_site.admin_view(self.validate_view)
        return [
            path("<id:object_id>/validate/", validate, name="oauth_oauthclient_validate"),
            *super().get_urls(),
        ]

    def validate_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        client = get_object_or_404(OAuthClient, pk=object_id)
        if not self.has_change_permission(request, client):
            return HttpResponse(status=403)
        grant = None
        if request.POST.get("grant"):
            grant = Grant.objects.filter(pk=request.POST["grant"], client=client).first()
        try:
            started = authorization_start(
                client=client, purpose="validate", actor=Actor.of(request.user), grant=grant
            )
        except ServiceError as exc:
            messages.error(request, f"Validate failed: {exc.message}")
            return HttpResponseRedirect(reverse("admin:oauth_oauthclient_change", args=[client.pk]))
        remember_binding(request, started.binding)
        return HttpResponseRedirect(started.url)


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    class Media:
        css = {"all": ["mailgrant/admin.css"]}  # the health column's colours

    list_display = ["client", "health_column", *(f for f in GRANT_FIELDS if f != "health_shown")]
    list_filter = ["health", "state", "client__provider", "client"]
    search_fields = ["account", "client__name"]
    fields = [
        "client",
        "subject",
        "scope",
        "authorized_at",
        "refresh_count",
        "last_error_at",
        *GRANT_FIELDS,
    ]
    readonly_fields = fields  # type: ignore[assignment]  # a grant is never edited by hand
    actions = ["refresh"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Health", ordering="health")
    def health_column(self, grant: Grant) -> str:
        return health_badge(grant)

    @admin.display(description="Health")
    def health_shown(self, grant: Grant) -> str:
        return health_detail(grant)

    def delete_model(self, request: HttpRequest, obj: Grant) -> None:
        grant_delete(grant=obj, actor=Actor.of(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Grant]) -> None:
        for grant in queryset:
            grant_delete(grant=grant, actor=Actor.of(request.user))

    @admin.action(description="Refresh tokens now", permissions=["change"])
    def refresh(self, request: HttpRequest, queryset: QuerySet[Grant]) -> None:
        for grant in queryset:
            try:
                grant_refresh(grant=grant, actor=Actor.of(request.user))
            except ServiceError as exc:
                self.message_user(request, f"{grant}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{grant}: refreshed.")
