"""GET /api/v1/status (scope `status`) and each object's health in its own routes."""

from __future__ import annotations

from typing import Any

import pytest

from mailgrant.api.services import apikey_create
from tests.api_client import Api
from tests.worker import world

pytestmark = pytest.mark.django_db


@pytest.fixture
def troubled(make_client: Any, make_grant: Any) -> dict[str, Any]:
    world.beating_worker()
    client = make_client(name="Microsoft 365")
    dead = world.needing_reauthorization(
        make_grant(client, account="bob@example.test"), message="invalid_grant: revoked"
    )
    fine = make_grant(client)
    box = world.failing(world.mailbox(name="support", client=client), message="refused")
    world.warning(make_client(name="Google"))
    return {"client": client, "fine": fine, "dead": dead, "box": box}


def test_status_says_the_worst_and_lists_everything_not_ok(
    api_as: Any, troubled: dict[str, Any]
) -> None:
    response = api_as("status").get("/status")

    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["health"] == "needs_reauthorization"
    assert body["counts"]["grant"] == {
        "ok": 1,
        "warning": 0,
        "failing": 0,
        "needs_reauthorization": 1,
        "disabled": 0,
    }
    assert [(p["kind"], p["name"], p["health"]) for p in body["problems"]] == [
        ("grant", "Microsoft 365: bob@example.test", "needs_reauthorization"),
        ("mailbox", "support", "failing"),
        ("client", "Google", "warning"),
    ]
    mailbox = body["problems"][1]
    assert mailbox["id"] == troubled["box"].pk
    assert mailbox["reason"] == "connect.refused" and "host and port" in mailbox["hint"]
    assert mailbox["message"] == "refused" and mailbox["consecutive_failures"] == 3
    assert [w["name"] for w in body["workers"]] == ["host:1:start"]


def test_status_needs_its_scope(api_as: Any, troubled: dict[str, Any]) -> None:
    refused = api_as("read", "write", "tokens", "metrics").get("/status")
    assert refused.status_code == 403
    assert "'status'" in refused.json()["message"]
    assert Api(None).get("/status").status_code == 401
    assert Api("mg_unknown").get("/status").status_code == 401


def test_each_route_answers_its_objects_health(api: Any, troubled: dict[str, Any]) -> None:
    dead = api.get(f"/grants/{troubled['dead'].pk}").json()
    assert dead["health"] == "needs_reauthorization"
    assert dead["health_reason"] == "test.refused"
    assert dead["health_hint"].startswith("The provider refused")
    assert dead["health_since"] is not None and dead["consecutive_failures"] == 1
    assert "next_attempt_at" in dead

    box = api.get(f"/mailboxes/{troubled['box'].pk}").json()
    assert (box["health"], box["health_reason"], box["consecutive_failures"]) == (
        "failing",
        "connect.refused",
        3,
    )
    assert "next_attempt_at" in box

    clients = {c["name"]: c for c in api.get("/oauth-clients").json()["items"]}
    assert clients["Google"]["health"] == "warning"
    assert (
        clients["Microsoft 365"]["health"] == "ok" and clients["Microsoft 365"]["health_hint"] == ""
    )
    grants = api.get(f"/oauth-clients/{troubled['client'].pk}/grants").json()
    assert {g["account"]: g["health"] for g in grants} == {
        "alice@example.test": "ok",
        "bob@example.test": "needs_reauthorization",
    }


CLIENT_SECRET = "canary-status-client-secret-3e7a"
ACCESS_TOKEN = "canary-status-access-token-b41d"
REFRESH_TOKEN = "canary-status-refresh-token-92c0"
MAILBOX_PASSWORD = "canary-status-mailbox-password-5f18"
CANARIES = (CLIENT_SECRET, ACCESS_TOKEN, REFRESH_TOKEN, MAILBOX_PASSWORD)


def test_no_secret_on_the_status_surfaces(
    api_as: Any, admin_client: Any, make_client: Any, make_grant: Any
) -> None:
    from django.test import Client

    from mailgrant.mailboxes.models import Mailbox
    from mailgrant.mailboxes.services.mailboxes import mailbox_save

    world.beating_worker()
    client = make_client(name="Microsoft 365", client_secret=CLIENT_SECRET)
    world.needing_reauthorization(
        make_grant(client, access_token=ACCESS_TOKEN, refresh_token=REFRESH_TOKEN)
    )
    world.warning(client)
    box = mailbox_save(
        mailbox=Mailbox(
            name="support",
            protocol="imap",
            host="127.0.0.1",
            port=1,
            security="none",
            username="pat@example.test",
            auth_method="password",
        ),
        password=MAILBOX_PASSWORD,
    )
    world.failing(box, message="[Errno 111] Connection refused")
    status_key = api_as("status")
    _, metrics_key = apikey_create(name="prometheus", scopes=["metrics"])

    surfaces = {
        "status": status_key.get("/status").content,
        "grants": api_as("read").get("/grants").content,
        "mailboxes": api_as("read").get("/mailboxes").content,
        "clients": api_as("read").get("/oauth-clients").content,
        "metrics": Client()
        .get("/metrics", headers={"Authorization": f"Bearer {metrics_key}"})
        .content,
        "dashboard": admin_client.get("/admin/").content,
        "mailbox page": admin_client.get(f"/admin/mailboxes/mailbox/{box.pk}/change/").content,
    }

    for name, content in surfaces.items():
        assert b"support" in content or name in ("grants", "clients", "metrics"), name
        for canary in CANARIES:
            assert canary.encode() not in content, (name, canary)
