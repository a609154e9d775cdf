"""The username a first sign-in creates, against the real provider (oidc-provider): normalized
(NFKC, no surrounding spaces) and validated as the user model does, and refused when it is, or
looks like, one already taken, whether it came from the claim or from the create expression.
A person the expression refuses is not told whether a name is taken."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from mailgrant.common.models import AuditEvent
from mailgrant.sso.models import SsoIdentity
from tests.servers.oidc import ACCOUNTS
from tests.sso.signin import page_text, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
User = get_user_model()
FULLWIDTH_ADMIN = "\uff41\uff44\uff4d\uff49\uff4e"
DOTLESS_ADMIN = "adm\u0131n"
CYRILLIC_ADMIN = "\u0430dmin"


@pytest.fixture(autouse=True)
def _fresh_claims(oidc: Any) -> Any:
    yield
    for account in ACCOUNTS.values():
        oidc.set_claims(account["sub"], {})


@pytest.fixture
def local_admin(db: Any) -> Any:
    return User.objects.create_superuser("admin", "admin@example.test", "local-password-1")


@pytest.fixture
def name_client(oidc_client: Any) -> Any:
    def make(expression: str = "true") -> Any:
        return oidc_client(
            name="Names",
            type="user",
            scope="openid email profile",
            username_attribute="preferred_username",
            user_create_expression=expression,
        )

    return make


def sign_in_as(oidc: Any, client: Any, username: str) -> Any:
    oidc.set_claims("bob", {"preferred_username": username})
    return sign_in(Client(), oidc, client, login="bob@example.test")


def assert_taken(response: Any, users_before: int) -> None:
    assert response.status_code == 403
    assert "or one too like it, already exists here" in page_text(response)
    assert User.objects.count() == users_before and not SsoIdentity.objects.exists()
    refusal = AuditEvent.objects.filter(action="sso.login_refused").latest("pk")
    assert "username_taken" in refusal.message


@pytest.mark.parametrize(
    "claimed",
    ["admin ", FULLWIDTH_ADMIN, DOTLESS_ADMIN, CYRILLIC_ADMIN, "ADMIN"],
    ids=["trailing-space", "fullwidth", "dotless-i", "cyrillic-a", "upper-case"],
)
def test_a_claimed_look_alike_of_a_local_user_is_refused(
    oidc: Any, name_client: Any, local_admin: Any, claimed: str
) -> None:
    assert_taken(sign_in_as(oidc, name_client(), claimed), users_before=1)


@pytest.mark.parametrize("named", ["admin", "Admin", f" {FULLWIDTH_ADMIN}"])
def test_a_name_the_expression_gives_is_checked_too(
    oidc: Any, name_client: Any, local_admin: Any, named: str
) -> None:
    client = name_client(f'{{"username": "{named}"}}')
    assert_taken(sign_in_as(oidc, client, "bob.new"), users_before=1)


def test_a_new_name_is_created_in_its_normal_form(oidc: Any, name_client: Any) -> None:
    response = sign_in_as(oidc, name_client(), "\uff4e\uff45\uff57\uff43\uff4f\uff4d\uff45\uff52 ")
    assert response.status_code == 302
    assert list(User.objects.values_list("username", flat=True)) == ["newcomer"]


def test_a_name_the_user_model_refuses_is_refused(oidc: Any, name_client: Any) -> None:
    response = sign_in_as(oidc, name_client(), "two words")
    assert response.status_code == 403
    assert "cannot name a user here" in page_text(response)
    assert not User.objects.exists()


def test_a_person_the_expression_refuses_learns_nothing_of_local_names(
    oidc: Any, name_client: Any, local_admin: Any
) -> None:
    client = name_client('claims.email.endsWith("@corp.test")')
    taken, free = sign_in_as(oidc, client, "admin"), sign_in_as(oidc, client, "nobody-here")
    assert taken.status_code == free.status_code == 403
    assert page_text(taken).replace("admin", "NAME") == page_text(free).replace(
        "nobody-here", "NAME"
    )
    assert "already exists" not in page_text(taken)
