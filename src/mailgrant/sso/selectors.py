"""Reads for the login page."""

from __future__ import annotations

from dataclasses import dataclass

from django.templatetags.static import static

from mailgrant.oauth.models import OAuthClient
from mailgrant.providers import USER
from mailgrant.sso.icons import ICONS, PROVIDER_ICONS


@dataclass(frozen=True)
class LoginButton:
    client_id: int
    caption: str
    icon_url: str


def login_buttons() -> list[LoginButton]:
    """One button per enabled user-type client, in name order."""
    clients = OAuthClient.objects.filter(type=USER, status=OAuthClient.Status.ENABLED).only(
        "pk", "name", "provider", "login_button_caption", "login_button_icon", "login_button_image"
    )
    return [
        LoginButton(
            client_id=client.pk,
            caption=client.login_button_caption or f"Sign in with {client.name}",
            icon_url=client.login_button_image or login_icon_url(client=client),
        )
        for client in clients
    ]


def login_icon_url(*, client: OAuthClient) -> str:
    name = client.login_button_icon or PROVIDER_ICONS.get(client.provider, "key")
    return static(f"mailgrant/icons/{name if name in ICONS else 'key'}.svg")


def sso_login_client(*, client_id: int) -> OAuthClient:
    """An enabled user-type client; DoesNotExist for anything else."""
    return OAuthClient.objects.get(pk=client_id, type=USER, status=OAuthClient.Status.ENABLED)
