from typing import Any, ClassVar

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html

from mailgrant.common.audit import Actor
from mailgrant.oauth.admin import OAuthClientAdmin
from mailgrant.oauth.models import OAuthClient
from mailgrant.sso.forms import ClientWithSignInForm
from mailgrant.sso.models import SsoIdentity
from mailgrant.sso.selectors import login_button_caption, login_icon_url, sign_in_of
from mailgrant.sso.services.clients import client_save
from mailgrant.sso.services.identities import (
    sso_identity_create,
    sso_identity_delete,
    sso_identity_update,
)

SIGN_IN_FIELDSET: Any = (
    "Single sign-on (user type)",
    {
        "classes": ["mailgrant-user-type"],
        "fields": [
            "userinfo_endpoint",
            "user_data_source",
            "related_ldaps",
            "username_attribute",
            "user_fields",
            "user_create_expression",
            "email_verified_required",
            "allowed_organizations",
            "login_button_caption",
            "login_button_icon",
            "login_button_preview",
            "login_button_upload",
            "login_button_image_clear",
        ],
    },
)


class ClientWithSignInAdmin(OAuthClientAdmin):
    """The OAuth client's page with its sign-in settings: one form, saved as one."""

    form = ClientWithSignInForm
    readonly_fields = [*OAuthClientAdmin.readonly_fields, "login_button_preview"]
    # Endpoint User Data moves from the endpoints to the sign-in settings, where the seed's
    # page shows it.
    fieldsets: ClassVar[Any] = [
        *(
            (
                title,
                {**options, "fields": [f for f in options["fields"] if f != "userinfo_endpoint"]},
            )
            for title, options in OAuthClientAdmin.fieldsets
        ),
        SIGN_IN_FIELDSET,
    ]

    @admin.display(description="Login button")
    def login_button_preview(self, client: OAuthClient) -> str:
        if client.pk is None:
            return "-"
        sign_in = sign_in_of(client=client)
        return format_html(
            '<span class="mailgrant-button-preview"><img src="{}" alt="" width="20" '
            'height="20"> {}</span>',
            sign_in.login_button_image or login_icon_url(client=client, sign_in=sign_in),
            login_button_caption(client=client, sign_in=sign_in),
        )

    def save_model(self, request: HttpRequest, obj: OAuthClient, form: Any, change: bool) -> None:
        client_save(
            client=obj,
            sign_in=form.sign_in,
            related_ldaps=form.cleaned_data.get("related_ldaps"),
            client_secret=form.cleaned_data.get("client_secret") or None,
            actor=Actor.of(request.user),
        )
        if obj.save_notice:
            self.message_user(request, obj.save_notice, messages.WARNING)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # The client has no many-to-many fields of its own (the related LDAPs are the sign-in
        # settings', saved by client_save); only the inline formsets are left.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


admin.site.unregister(OAuthClient)
admin.site.register(OAuthClient, ClientWithSignInAdmin)


@admin.register(SsoIdentity)
class SsoIdentityAdmin(admin.ModelAdmin):
    """Who signed in through which client. Adding one links an existing user to a person at the
    provider (by subject) before their first sign-in; every change is audited."""

    list_display = ["user", "client", "issuer", "subject", "created_at", "last_login_at"]
    list_filter = ["client"]
    search_fields = ["subject", "issuer", "user__username", "user__email"]
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at", "last_login_at"]

    def save_model(self, request: HttpRequest, obj: SsoIdentity, form: Any, change: bool) -> None:
        actor = Actor.of(request.user)
        if change:
            sso_identity_update(identity=obj, actor=actor)
        else:
            sso_identity_create(
                client=obj.client,
                issuer=obj.issuer,
                subject=obj.subject,
                user=obj.user,
                actor=actor,
            )

    def delete_model(self, request: HttpRequest, obj: SsoIdentity) -> None:
        sso_identity_delete(identity=obj, actor=Actor.of(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for identity in queryset:
            sso_identity_delete(identity=identity, actor=Actor.of(request.user))
