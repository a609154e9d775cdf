"""The health probe: no key, no database, nothing said but that the service is up."""

from django.test import Client


def test_health_answers_without_a_key_or_the_database() -> None:
    # No `db` fixture: any database access here would fail the test.
    response = Client().get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_health_is_read_only_and_documented() -> None:
    assert Client().post("/api/v1/health").status_code == 405
    schema = Client().get("/api/v1/openapi.json").json()
    assert "security" not in schema["paths"]["/api/v1/health"]["get"]
