"""The client registry in the Django admin: grid, form, write-only secret, Validate button."""

import re

import pytest
from django.urls import reverse

from mailgrant.common.models import AuditEvent
from mailgrant.oauth.models import OAuthClient
from tests.oauth.client_form import SECRET, client_form

pytestmark = pytest.mark.django_db


def test_add_form_has_no_redirect_uri_yet_and_every_seed_field(admin_client) -> None:
    html = admin_client.get(reverse("admin:oauth_oauthclient_add")).content.decode()
    assert "Redirect URI" not in html
    for field in (
        "name",
        "provider",
        "type",
        "client_id",
        "client_secret",
        "scope",
        "authorize_url",
        "token_url",
        "proxy",
        "verify_ssl",
        "status",
        "scope_separator",
        "userinfo_endpoint",
        "related_ldaps",
        "user_data_source",
        "username_attribute",
        "user_fields",
        "user_create_expression",
        "login_button_caption",
        "login_button_icon",
        "tenant",
        "issuer",
    ):
        assert f'name="{field}"' in html, field


def test_create_then_redirect_uri_validate_button_and_secret_never_rendered(admin_client):
    response = admin_client.post(reverse("admin:oauth_oauthclient_add"), client_form(), follow=True)
    assert response.status_code == 200
    client = OAuthClient.objects.get(name="Support mailbox")
    assert client.client_secret.reveal() == SECRET
    assert client.scope_separator == " "
    html = admin_client.get(
        reverse("admin:oauth_oauthclient_change", args=[client.pk])
    ).content.decode()
    assert f'value="http://testserver/oauth/callback/{client.pk}/"' in html
    assert "data-copy" in html and ">Validate</button>" in html
    assert SECRET not in html
    secret_input = re.search(r'<input[^>]*name="client_secret"[^>]*>', html).group(0)
    assert "value=" not in secret_input
    assert "A secret is stored" in html
    assert AuditEvent.objects.filter(action="oauth_client.created").count() == 1


def test_empty_secret_on_edit_keeps_it_and_new_secret_replaces_it(admin_client) -> None:
    admin_client.post(reverse("admin:oauth_oauthclient_add"), client_form())
    client = OAuthClient.objects.get()
    url = reverse("admin:oauth_oauthclient_change", args=[client.pk])
    admin_client.post(url, client_form(client_secret="", name="Renamed"))
    client.refresh_from_db()
    assert client.name == "Renamed" and client.client_secret.reveal() == SECRET
    admin_client.post(url, client_form(client_secret="another-secret-value", name="Renamed"))
    client.refresh_from_db()
    assert client.client_secret.reveal() == "another-secret-value"


def test_grid_shows_state_and_filters(admin_client, make_client, make_grant) -> None:
    make_grant(make_client(name="Authorized one", provider="azure"))
    make_client(name="Fresh one", provider="google", status="disabled")
    html = admin_client.get(reverse("admin:oauth_oauthclient_changelist")).content.decode()
    assert "Authorized one" in html and "Fresh one" in html
    assert "Authorized" in html and "Not validated" in html
    filtered = admin_client.get(reverse("admin:oauth_oauthclient_changelist") + "?provider=google")
    assert "Authorized one" not in filtered.content.decode()
    found = admin_client.get(reverse("admin:oauth_oauthclient_changelist") + "?q=fresh")
    assert "Authorized one" not in found.content.decode()


def test_enable_and_disable_actions(admin_client, make_client) -> None:
    client = make_client(name="Toggle")
    url = reverse("admin:oauth_oauthclient_changelist")
    admin_client.post(url, {"action": "disable", "_selected_action": [client.pk]})
    client.refresh_from_db()
    assert client.status == "disabled"
    admin_client.post(url, {"action": "enable", "_selected_action": [client.pk]})
    client.refresh_from_db()
    assert client.status == "enabled"
    assert AuditEvent.objects.filter(
        action="oauth_client.disabled", target_id=str(client.pk)
    ).exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("proxy", "proxy.example.com:3128", "A proxy must be a URL"),
        ("proxy", "http://proxy:99999", "port"),
        ("name", "", "This field is required"),
        ("provider", "yahoo", "Select a valid choice"),
        ("authorize_url", "javascript:alert(1)", "Enter a valid URL"),
        ("user_fields", "{not json", "Enter a valid JSON"),
    ],
)
def test_bad_input_is_a_form_error_and_saves_nothing(admin_client, field, value, message) -> None:
    response = admin_client.post(
        reverse("admin:oauth_oauthclient_add"), client_form(**{field: value})
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not OAuthClient.objects.exists()
    assert SECRET not in response.content.decode()


def test_generic_needs_issuer_or_urls(admin_client) -> None:
    response = admin_client.post(
        reverse("admin:oauth_oauthclient_add"), client_form(provider="generic")
    )
    assert "Enter the issuer URL" in response.content.decode()
    assert not OAuthClient.objects.exists()


def test_discovery_fills_endpoints(admin_client, fake_provider) -> None:
    issuer = fake_provider.url
    fake_provider.answer(
        "/.well-known/openid-configuration",
        {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/auth",
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks",
            "userinfo_endpoint": f"{issuer}/me",
            "authorization_response_iss_parameter_supported": True,
        },
    )
    admin_client.post(
        reverse("admin:oauth_oauthclient_add"), client_form(provider="generic", issuer=issuer)
    )
    client = OAuthClient.objects.get()
    assert client.metadata["token_endpoint"] == f"{issuer}/token"
    assert client.metadata["iss_parameter_supported"] is True


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (None, "answered HTTP 404"),
        ({"issuer": "https://evil.example"}, "has no authorization_endpoint"),
        (
            {
                "issuer": "https://evil.example",
                "authorization_endpoint": "x",
                "token_endpoint": "y",
            },
            "names issuer",
        ),
    ],
)
def test_invalid_discovery_is_a_form_error(admin_client, fake_provider, answer, message) -> None:
    if answer is not None:
        fake_provider.answer("/.well-known/openid-configuration", answer)
    response = admin_client.post(
        reverse("admin:oauth_oauthclient_add"),
        client_form(provider="generic", issuer=fake_provider.url),
    )
    assert "OpenID discovery failed" in response.content.decode()
    assert message in response.content.decode()
    assert not OAuthClient.objects.exists()


def test_unreachable_discovery_is_a_form_error(admin_client) -> None:
    response = admin_client.post(
        reverse("admin:oauth_oauthclient_add"),
        client_form(provider="generic", issuer="http://127.0.0.1:9/"),
    )
    assert "cannot connect" in response.content.decode()


def test_validate_needs_post_and_an_enabled_client(admin_client, make_client) -> None:
    client = make_client(status="disabled")
    url = reverse("admin:oauth_oauthclient_validate", args=[client.pk])
    assert admin_client.get(url).status_code == 405
    response = admin_client.post(url, follow=True)
    assert "This client is disabled" in response.content.decode()
    assert not client.grants.exists()


def test_validate_redirects_to_the_provider(admin_client, make_client) -> None:
    client = make_client(provider="google")
    response = admin_client.post(reverse("admin:oauth_oauthclient_validate", args=[client.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith("https://accounts.google.com/o/oauth2/v2/auth?")


def test_validate_requires_staff(client, make_client) -> None:
    oauth_client = make_client()
    response = client.post(reverse("admin:oauth_oauthclient_validate", args=[oauth_client.pk]))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_a_client_or_grant_a_mailbox_uses_cannot_be_deleted_in_the_admin(
    admin_client, make_client, make_grant
):
    from mailgrant.mailboxes.models import Mailbox
    from mailgrant.oauth.models import Grant

    client = make_client(name="In use")
    grant = make_grant(client)
    Mailbox.objects.create(
        name="support",
        host="127.0.0.1",
        port=993,
        username="support@example.test",
        auth_method="oauth2",
        oauth_client=client,
        grant=grant,
    )
    for url in (
        reverse("admin:oauth_oauthclient_delete", args=[client.pk]),
        reverse("admin:oauth_grant_delete", args=[grant.pk]),
    ):
        page = admin_client.get(url).content.decode()
        # Django's own confirmation page lists what protects it, and refuses the delete.
        assert "would require deleting the following protected related objects" in page, url
        assert re.search(r"<li>Mailbox: <a [^>]+>support</a></li>", page), url
        response = admin_client.post(url, {"post": "yes"})
        assert response.status_code in (200, 403), url
    assert OAuthClient.objects.filter(pk=client.pk).exists()
    assert Grant.objects.filter(pk=grant.pk).exists()


def test_an_unused_grant_is_deleted_in_the_admin_with_its_audit_row(
    admin_client, make_client, make_grant
):
    from mailgrant.oauth.models import Grant

    grant = make_grant(make_client(name="Unused"))
    response = admin_client.post(
        reverse("admin:oauth_grant_delete", args=[grant.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Grant.objects.exists()
    assert AuditEvent.objects.filter(action="grant.deleted").exists()
