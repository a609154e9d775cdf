"""The one REST API: /api/v1, OpenAPI at /api/v1/openapi.json, docs at /api/v1/docs."""

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils.datastructures import MultiValueDict
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI
from ninja.parser import Parser

from mailgrant.api import errors, routers


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
    "'Authorization: Bearer <API key>' (scopes: read, write, tokens) or an admin "
    "session.",
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
    parser=RepeatsKeptParser(),
)
errors.install(api)
api.add_router("/oauth-clients", routers.clients)
api.add_router("/authorizations", routers.authorizations)
api.add_router("/grants", routers.grants)
api.add_router("/mailboxes", routers.mailboxes)
api.add_router("/messages", routers.messages)


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
