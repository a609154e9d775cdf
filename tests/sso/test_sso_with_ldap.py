"""Sign-in with Related LDAPs, against the real provider and the real slapd: the person the
expression admits is linked to the synced directory user with the same username (no new user);
a person the directory marks disabled is refused, at the first sign-in and later."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from mailgrant.common.models import AuditEvent
from mailgrant.directory.models import DirectoryAccount
from mailgrant.directory.services.sync import ldap_directory_sync
from mailgrant.sso.models import SsoIdentity
from tests.servers import slapd as peer
from tests.sso.signin import page_text, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
User = get_user_model()
ALICE, BOB, CAROL = peer.PEOPLE


@pytest.fixture
def linked_client(oidc_client: Any, make_directory: Any) -> Any:
    directory = make_directory(name="Corp directory")
    ldap_directory_sync(directory=directory)
    client = oidc_client(
        name="Corp sign-in",
        type="user",
        scope="openid email profile groups",
        # The provider's sub (alice) is the directory's uid (the default attribute map's
        # username): the two name the same person.
        username_attribute="sub",
        user_fields={"email": "email", "first_name": "name", "is_staff": "email_verified"},
        # The expression admits every first sign-in, links included: directory people only.
        user_create_expression="has(user.directory)",
    )
    client.sign_in.related_ldaps.set([directory])
    return client


def test_a_directory_person_is_linked_not_created(
    oidc: Any, linked_client: Any, directory_people: Any
) -> None:
    alice = User.objects.get(username="alice")
    assert DirectoryAccount.objects.get(user=alice)
    response = sign_in(Client(), oidc, linked_client, next_url="/admin/")
    assert response.status_code == 302
    assert User.objects.filter(username__startswith="alice").count() == 1
    assert SsoIdentity.objects.get(client=linked_client).user == alice
    alice.refresh_from_db()
    # The directory owns its fields (first_name stays the directory's givenName); the
    # sign-in may set the others.
    assert alice.first_name == ALICE.given_name and alice.is_staff
    login = AuditEvent.objects.get(action="sso.login")
    assert "(directory)" in login.message

    # Later sign-ins go through the identity, and still ask the directory.
    assert sign_in(Client(), oidc, linked_client).status_code == 302
    directory_people.modify(ALICE.dn, employeeType=["disabled"])
    response = sign_in(Client(), oidc, linked_client)
    assert response.status_code == 403
    assert "disabled" in page_text(response)


def test_a_person_the_directory_disables_is_refused_and_nothing_is_created(
    oidc: Any, linked_client: Any
) -> None:
    users_before = User.objects.count()
    response = sign_in(Client(), oidc, linked_client, login="carol@example.test")
    assert response.status_code == 403
    assert "disabled" in page_text(response)
    assert User.objects.count() == users_before and not SsoIdentity.objects.exists()
    refusal = AuditEvent.objects.get(action="sso.login_refused")
    assert "directory_user_disabled" in refusal.message


def test_a_person_removed_from_the_directory_is_refused_like_a_disabled_one(
    oidc: Any, linked_client: Any, directory_people: Any
) -> None:
    directory_people.delete(BOB.dn)
    response = sign_in(Client(), oidc, linked_client, login="bob@example.test")
    assert response.status_code == 403
    assert "disabled in the company directory" in page_text(response)
    assert not SsoIdentity.objects.exists()
    assert not User.objects.get(username="bob").is_active


def test_a_person_the_directory_never_knew_goes_to_the_expression(
    oidc: Any, linked_client: Any, directory_people: Any
) -> None:
    User.objects.filter(username="bob").delete()
    directory_people.delete(BOB.dn)
    response = sign_in(Client(), oidc, linked_client, login="bob@example.test")
    assert response.status_code == 403
    assert "does not allow an account for bob" in page_text(response)
    assert not SsoIdentity.objects.exists()


def test_the_login_pages_name_the_directories_shown_in_login(make_directory: Any) -> None:
    make_directory(name="Corp directory", show_in_login=True)
    make_directory(name="Hidden directory", show_in_login=False)
    for url in ("/admin/login/", "/accounts/login/"):
        html = Client().get(url).content.decode()
        assert "Directory accounts (Corp directory) sign in below" in html, url
        assert "Hidden directory" not in html


def test_a_directory_person_signs_in_on_the_login_page_with_the_directory_password(
    make_directory: Any,
) -> None:
    make_directory(name="Corp directory", show_in_login=True)
    browser = Client()
    response = browser.post("/accounts/login/", {"username": "alice", "password": ALICE.password})
    assert response.status_code == 302 and response["Location"] == "/accounts/"
    assert "Signed in as alice" in browser.get("/accounts/").content.decode()
    refused = Client().post("/accounts/login/", {"username": "carol", "password": CAROL.password})
    assert refused.status_code == 200 and "_auth_user_id" not in refused.client.session
