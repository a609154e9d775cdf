"""Who a first sign-in admits, against the real provider (oidc-provider) and the real slapd:
linking to a directory user passes the user create expression like a creation does, so a
username the person chose at the provider does not take over the directory user of that name;
a verified email is required when it names the user, at every sign-in."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from mailgrant.common.models import AuditEvent
from mailgrant.directory.services.sync import ldap_directory_sync
from mailgrant.sso.models import SsoIdentity
from tests.servers import slapd as peer
from tests.servers.oidc import ACCOUNTS
from tests.sso.signin import page_text, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
User = get_user_model()
ALICE, BOB, CAROL = peer.PEOPLE
REVIEW_EXPRESSION = 'claims.email_verified == true && claims.email.endsWith("@example.test")'


@pytest.fixture(autouse=True)
def _fresh_claims(oidc: Any) -> Any:
    yield
    for account in ACCOUNTS.values():
        oidc.set_claims(account["sub"], {})


@pytest.fixture
def directory_client(oidc_client: Any, make_directory: Any) -> Any:
    """The review's set-up: a generic sign-in client naming users by preferred_username, with
    the directory as Related LDAPs and an expression that asks for a verified email."""

    def make(expression: str = REVIEW_EXPRESSION) -> Any:
        directory = make_directory(name="staff")
        ldap_directory_sync(directory=directory)
        client = oidc_client(
            name="corp-sso",
            type="user",
            scope="openid email profile",
            username_attribute="preferred_username",
            user_fields={"email": "email"},
            user_create_expression=expression,
        )
        client.sign_in.related_ldaps.set([directory])
        return client

    return make


def test_a_chosen_username_does_not_take_over_the_directory_user(
    oidc: Any, directory_client: Any
) -> None:
    client = directory_client()
    oidc.set_claims(
        "carol",
        {"preferred_username": "alice", "email": "attacker@evil.test", "email_verified": False},
    )
    browser = Client()
    response = sign_in(browser, oidc, client, login="carol@example.test")
    assert response.status_code == 403
    assert "does not allow an account for alice" in page_text(response)
    assert "_auth_user_id" not in browser.session
    assert not SsoIdentity.objects.exists()
    refusal = AuditEvent.objects.get(action="sso.login_refused")
    assert "expression_refused" in refusal.message


def test_a_directory_person_the_expression_admits_is_linked(
    oidc: Any, directory_client: Any
) -> None:
    client = directory_client()
    oidc.set_claims("alice", {"preferred_username": "alice"})
    browser = Client()
    response = sign_in(browser, oidc, client)
    assert response.status_code == 302
    alice = User.objects.get(username="alice")
    assert browser.session["_auth_user_id"] == str(alice.pk)
    identity = SsoIdentity.objects.get(client=client)
    assert (identity.user, identity.issuer, identity.subject) == (alice, oidc.issuer, "alice")
    assert "(directory)" in AuditEvent.objects.get(action="sso.login").message


def test_an_expression_can_admit_directory_people_only(oidc: Any, directory_client: Any) -> None:
    client = directory_client("has(user.directory) && claims.email_verified == true")
    oidc.set_claims("alice", {"preferred_username": "alice"})
    assert sign_in(Client(), oidc, client).status_code == 302
    users_before = User.objects.count()
    oidc.set_claims("bob", {"preferred_username": "someone-new"})
    response = sign_in(Client(), oidc, client, login="bob@example.test")
    assert response.status_code == 403
    assert "does not allow an account for someone-new" in page_text(response)
    assert User.objects.count() == users_before


def test_an_empty_expression_links_no_one_new(oidc: Any, directory_client: Any) -> None:
    client = directory_client("")
    oidc.set_claims("alice", {"preferred_username": "alice"})
    response = sign_in(Client(), oidc, client)
    assert response.status_code == 403
    assert "does not create unknown users nor link new ones" in page_text(response)
    assert not SsoIdentity.objects.exists()


@pytest.fixture
def email_client(oidc_client: Any) -> Any:
    def make(**fields: Any) -> Any:
        return oidc_client(
            name="Email sign-in",
            type="user",
            scope="openid email profile",
            username_attribute="email",
            user_create_expression="true",
            **fields,
        )

    return make


def test_an_unverified_email_naming_the_user_is_refused_at_every_sign_in(
    oidc: Any, email_client: Any
) -> None:
    client = email_client()
    oidc.set_claims("bob", {"email_verified": False})
    response = sign_in(Client(), oidc, client, login="bob@example.test")
    assert response.status_code == 403
    assert "which the provider has not verified" in page_text(response)
    assert not User.objects.exists()

    oidc.set_claims("bob", {})
    assert sign_in(Client(), oidc, client, login="bob@example.test").status_code == 302
    oidc.set_claims("bob", {"email_verified": False})
    response = sign_in(Client(), oidc, client, login="bob@example.test")
    assert response.status_code == 403
    assert (
        "email_unverified"
        in AuditEvent.objects.filter(action="sso.login_refused").latest("pk").message
    )


def test_the_verified_email_requirement_can_be_turned_off(oidc: Any, email_client: Any) -> None:
    client = email_client(email_verified_required=False)
    oidc.set_claims("bob", {"email_verified": False})
    response = sign_in(Client(), oidc, client, login="bob@example.test")
    assert response.status_code == 302
    assert User.objects.get().username == "bob@example.test"
