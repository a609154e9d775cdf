"""The user-type half of the client form: claim mapping, username attribute, create
expression, button icon (named or uploaded), related LDAPs. Checked when the client is saved,
in the admin and through the service the API and CLI share."""

from __future__ import annotations

import base64
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from mailgrant.common.errors import Invalid
from mailgrant.directory.models import LdapDirectory
from mailgrant.oauth.models import OAuthClient
from tests.oauth.client_form import client_form

pytestmark = pytest.mark.django_db

# A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def _user_form(**overrides):
    return client_form(
        name="Sign-in",
        provider="azure",
        type="user",
        client_id="00000000-1111-2222-3333-444444444444",
        **overrides,
    )


def _post(admin_client, data, pk=None):
    url = (
        reverse("admin:oauth_oauthclient_change", args=[pk])
        if pk
        else reverse("admin:oauth_oauthclient_add")
    )
    return admin_client.post(url, data)


def _errors(response) -> str:
    return response.content.decode() if response.status_code == 200 else ""


def test_a_user_type_client_with_mapping_expression_icon_and_ldaps(admin_client) -> None:
    directory = LdapDirectory.objects.create(
        name="Corp", server_uri="ldap://127.0.0.1:1", base_dn="dc=example,dc=test"
    )
    data = _user_form(
        user_fields='{"email": "email", "last_name": "address.locality", "groups": "roles"}',
        username_attribute="preferred_username",
        user_create_expression='claims.email.endsWith("@example.com")',
        login_button_caption="Sign in with Contoso",
        login_button_icon="microsoft",
        related_ldaps=[str(directory.pk)],
    )
    response = _post(admin_client, data)
    assert response.status_code == 302, _errors(response)[:2000]
    client = OAuthClient.objects.get(name="Sign-in")
    assert list(client.sign_in.related_ldaps.all()) == [directory]
    assert client.sign_in.user_fields["last_name"] == "address.locality"

    page = admin_client.get(reverse("admin:oauth_oauthclient_change", args=[client.pk]))
    html = page.content.decode()
    assert "mailgrant/icons/microsoft.svg" in html and "Sign in with Contoso" in html


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("user_fields", '{"is_superuser": "admin"}', "not a field a provider may set"),
        ("user_fields", '{"email": "address..x"}', "cannot read the claim path"),
        ("user_fields", '{"email": 3}', "must be text"),
        ("user_fields", '["email"]', "a JSON object"),
        ("username_attribute", "[0]", "must start with a claim name"),
        ("login_button_icon", "javascript:alert(1)", "Unknown icon"),
    ],
)
def test_bad_sign_in_fields_are_form_errors_naming_the_problem(
    admin_client, field, value, words
) -> None:
    response = _post(admin_client, _user_form(**{field: value}))
    assert response.status_code == 200
    assert words in response.content.decode().replace("&#x27;", "'")
    assert not OAuthClient.objects.exists()


def test_the_service_refuses_the_same_for_the_api_and_cli(make_client) -> None:
    with pytest.raises(Invalid) as caught:
        make_client(type="user", user_fields={"password": "sub"}, login_button_icon="nope")
    assert set(caught.value.fields) == {"user_fields", "login_button_icon"}


def test_an_uploaded_png_becomes_the_button_and_can_be_removed(admin_client, client) -> None:
    upload = SimpleUploadedFile("logo.png", PNG, content_type="image/png")
    response = _post(admin_client, _user_form(login_button_upload=upload))
    assert response.status_code == 302, _errors(response)[:2000]
    saved = OAuthClient.objects.get()
    assert saved.sign_in.login_button_image.startswith("data:image/png;base64,")
    assert saved.sign_in.login_button_image in client.get("/accounts/login/").content.decode()

    response = _post(admin_client, _user_form(login_button_image_clear="on"), pk=saved.pk)
    assert response.status_code == 302
    saved.refresh_from_db()
    assert saved.sign_in.login_button_image == ""


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("logo.svg", b"<svg onload='alert(1)'/>", "SVG is not accepted"),
        ("logo.png", b"not an image at all", "Upload a PNG"),
        ("big.png", PNG + b"\0" * 70_000, "over 64 KB"),
    ],
)
def test_a_bad_upload_is_refused(admin_client, name, content, words) -> None:
    upload = SimpleUploadedFile(name, content)
    response = _post(admin_client, _user_form(login_button_upload=upload))
    assert response.status_code == 200 and words in response.content.decode()
    assert not OAuthClient.objects.exists()


def test_an_expression_syntax_error_is_a_form_error_naming_its_position(admin_client) -> None:
    response = _post(
        admin_client, _user_form(user_create_expression='claims.email.endsWith("@x" &&')
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r"line 1, column \d+", html), html[:3000]
    assert not OAuthClient.objects.exists()


def test_an_expression_with_an_unknown_variable_is_refused_on_save(make_client) -> None:
    with pytest.raises(Invalid) as caught:
        make_client(type="user", user_create_expression='request.user == "admin"')
    assert "request" in caught.value.fields["user_create_expression"]
