"""Reads: a client's sign-in settings, the login page's buttons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.templatetags.static import static

from mailgrant.oauth.models import OAuthClient
from mailgrant.oauth.selectors import oauth_client_authorize_url, oauth_client_public
from mailgrant.providers import USER, get_provider
from mailgrant.sso.icons import ICONS
from mailgrant.sso.models import SignIn

# The sign-in settings on the client's form, as the API and the command line name them.
SIGN_IN_FIELDS = (
    "user_data_source",
    "username_attribute",
    "user_fields",
    "user_create_expression",
    "email_verified_required",
    "allowed_organizations",
    "login_button_caption",
    "login_button_icon",
)


def sign_in_of(*, client: OAuthClient) -> SignIn:
    """The client's sign-in settings (read once per client instance, or taken from its
    select_related); the defaults (not saved) when it has none yet."""
    if client.pk is None:
        return SignIn()
    try:
        return client.sign_in  # type: ignore[no-any-return]
    except SignIn.DoesNotExist:
        return SignIn(client=client)


def sign_in_public(*, client: OAuthClient) -> dict[str, Any]:
    sign_in = sign_in_of(client=client)
    related = [d.pk for d in sign_in.related_ldaps.all()] if sign_in.pk else []
    return {
        **{name: getattr(sign_in, name) for name in SIGN_IN_FIELDS},
        "related_ldaps": sorted(related),
    }


def clients_with_sign_in(clients: QuerySet[OAuthClient]) -> QuerySet[OAuthClient]:
    """`clients` with their sign-in settings and related LDAPs read in the same queries, for
    listing them (client_public) without a query per client."""
    return clients.select_related("sign_in").prefetch_related("sign_in__related_ldaps")


def client_public(*, client: OAuthClient) -> dict[str, Any]:
    """What an administrator may see of a client and its sign-in settings, flat (the API's
    and the command line's shape)."""
    public = oauth_client_public(client=client)
    sign_in = sign_in_public(client=client)
    # The form's order: the sign-in fields after the endpoints, before the timestamps.
    head = {
        k: v
        for k, v in public.items()
        if k not in ("has_client_secret", "redirect_uri", "created_at", "updated_at")
    }
    tail = {k: public[k] for k in ("has_client_secret", "redirect_uri", "created_at", "updated_at")}
    return {**head, **sign_in, **tail}


@dataclass(frozen=True)
class LoginButton:
    client_id: int
    caption: str
    icon_url: str
    authorize_url: str  # where the button leads, past mailgrant (the page's CSP allows it)


def login_buttons() -> list[LoginButton]:
    """One button per enabled user-type client, in name order."""
    clients = OAuthClient.objects.filter(
        type=USER, status=OAuthClient.Status.ENABLED
    ).select_related("sign_in")
    buttons = []
    for client in clients:
        sign_in = sign_in_of(client=client)
        buttons.append(
            LoginButton(
                client_id=client.pk,
                caption=login_button_caption(client=client, sign_in=sign_in),
                icon_url=sign_in.login_button_image
                or login_icon_url(client=client, sign_in=sign_in),
                authorize_url=oauth_client_authorize_url(client=client),
            )
        )
    return buttons


def login_button_caption(*, client: OAuthClient, sign_in: SignIn) -> str:
    return sign_in.login_button_caption or f"Sign in with {client.name}"


def login_icon_url(*, client: OAuthClient, sign_in: SignIn) -> str:
    """The named icon, else the provider's own."""
    name = sign_in.login_button_icon or get_provider(client.provider).icon
    return static(f"mailgrant/icons/{name if name in ICONS else 'key'}.svg")


def sso_login_client(*, client_id: int) -> OAuthClient:
    """An enabled user-type client; DoesNotExist for anything else."""
    return OAuthClient.objects.get(pk=client_id, type=USER, status=OAuthClient.Status.ENABLED)
