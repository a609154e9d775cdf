"""GET /health: the service answers."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Router

from mailgrant.api.schemas import (
    HealthOut,
)

router = Router(tags=["service"])


@router.get("", response=HealthOut, auth=None)
def service_health(request: HttpRequest, response: HttpResponse) -> Any:
    """For monitoring probes: the service answers. No key needed, nothing about the
    configuration or the data is said, and the database is not touched (a cheap liveness check)."""
    response["Cache-Control"] = "no-store"
    return {"status": "ok"}
