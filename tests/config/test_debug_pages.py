"""With DEBUG on, Django's technical 500 page goes to a signed-in superuser only (anyone else
gets the plain page), and building it neither runs a QuerySet nor fails on a value whose repr
raises."""

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.urls import path

from mailgrant.common.redaction import remember_secret
from mailgrant.oauth.models import OAuthClient

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

CANARY = "canary-frame-secret-6d5c4b"


class ReprRaises:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def boom(request: HttpRequest) -> HttpResponse:
    remember_secret(CANARY)
    note = f"held {CANARY}"  # noqa: F841  (a local the report shows, redacted)
    # Evaluating it would fail in SQLite's driver (OverflowError): the report must not.
    clients = OAuthClient.objects.filter(pk=2**70)  # noqa: F841
    odd = ReprRaises()  # noqa: F841
    raise ValueError("the view failed")


def fails(request: HttpRequest) -> HttpResponse:
    remember_secret(CANARY)
    note = f"held {CANARY}"  # noqa: F841
    raise ValueError("the view failed")


urlpatterns = [path("boom/", boom), path("fails/", fails)]


def _user(**flags: Any) -> Any:
    return get_user_model().objects.create_user("person", "p@x.test", "pw", **flags)


@pytest.fixture
def debug_client(client: Any, settings: Any) -> Any:
    settings.DEBUG = True
    client.raise_request_exception = False
    return client


@pytest.mark.parametrize(
    "who", [None, {"is_staff": True}], ids=["anonymous", "staff-not-superuser"]
)
def test_only_a_superuser_sees_the_technical_page(debug_client: Any, who: Any) -> None:
    if who is not None:
        debug_client.force_login(_user(**who))
    for accept in ("text/html", "text/plain"):
        answer = debug_client.get("/fails/", headers={"accept": accept})
        body = answer.content.decode()
        assert answer.status_code == 500
        assert "Server Error (500)" in body
        for leak in ("Traceback", "the view failed", "SECRET_KEY", "fails", "held", CANARY):
            assert leak not in body, leak


def test_the_superuser_page_survives_a_queryset_and_a_failing_repr(debug_client: Any) -> None:
    debug_client.force_login(_user(is_staff=True, is_superuser=True))
    answer = debug_client.get("/boom/", headers={"accept": "text/html"})
    body = answer.content.decode()
    assert answer.status_code == 500
    assert "ValueError" in body and "the view failed" in body
    assert "QuerySet of OAuthClient: not evaluated" in body
    assert "unrepresentable ReprRaises: RuntimeError" in body
    assert CANARY not in body and "held ***" in body

    text = debug_client.get("/boom/", headers={"accept": "text/plain"}).content.decode()
    assert "the view failed" in text and CANARY not in text
