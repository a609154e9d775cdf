"""The one REST API: /api/v1, OpenAPI at /api/v1/openapi.json, docs at /api/v1/docs."""

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern
from django.utils.datastructures import MultiValueDict
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI
from ninja.parser import Parser

from mailgrant.api import errors
from mailgrant.api.broker import with_fast_path
from mailgrant.api.routers import (
    alerts,
    authorizations,
    clients,
    events,
    grants,
    health,
    mailboxes,
    messages,
    status,
    webhooks,
)


class RepeatsKeptParser(Parser):
    """A single-valued query parameter sent twice (?limit=5&limit=5000) keeps both values, so
    validation refuses it (400) instead of the last one winning unseen."""

    def parse_querydict(
        self, data: MultiValueDict[str, Any], list_fields: list[str], request: HttpRequest
    ) -> dict[str, Any]:
        result = super().parse_querydict(data, list_fields, request)
        for key, values in data.lists():
            if key not in list_fields and len(values) > 1:
                result[key] = values
        return result


api = NinjaAPI(
    title="mailgrant",
    version="1",
    description="OAuth2 clients, grants, mailboxes and the token broker. Authenticate with "
    "'Authorization: Bearer <API key>' (scopes: read, write, tokens, status, events; /metrics "
    "takes metrics) or an admin session (with the rights of the user's Django permissions).",
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
    parser=RepeatsKeptParser(),
)
errors.install(api)
api.add_router("/health", health.router)
api.add_router("/status", status.router)
api.add_router("/oauth-clients", clients.router)
api.add_router("/authorizations", authorizations.router)
api.add_router("/grants", grants.router)
api.add_router("/mailboxes", mailboxes.router)
api.add_router("/messages", messages.router)
api.add_router("/alerts", alerts.router)
api.add_router("/incidents", alerts.incidents_router)
api.add_router("/events", events.router)
api.add_router("/webhooks", webhooks.router)


def urls() -> tuple[list[Any], str, str]:
    """The API's URL patterns, the token broker's with its fast path in front (api.broker) and
    first: the most frequent call is not made to try the others' patterns before its own."""
    patterns, app_name, namespace = api.urls
    broker = grants.broker.__name__  # django-ninja names a route's URL after its function
    found = [p for p in patterns if isinstance(p, URLPattern) and p.name == broker]
    if len(found) != 1:
        raise RuntimeError(f"The broker's URL pattern ({broker!r}) is not where expected.")
    fast = URLPattern(found[0].pattern, with_fast_path(found[0].callback), None, broker)
    return [fast, *(p for p in patterns if p is not found[0])], app_name, namespace


@csrf_exempt  # whatever the method: there is nothing here to protect, and no HTML 403 either
def unknown_path(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Anything under /api/v1/ that is no route: a problem in JSON, as every API answer is,
    never Django's HTML page."""
    response = JsonResponse(
        {"code": "not_found", "message": f"No API path {request.path!r}: see /api/v1/docs."},
        status=404,
    )
    response["Cache-Control"] = "no-store"
    return response
