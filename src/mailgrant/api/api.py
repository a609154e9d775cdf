"""The one REST API: /api/v1, OpenAPI at /api/v1/openapi.json, docs at /api/v1/docs."""

from ninja import NinjaAPI

from mailgrant.api import errors, routers

api = NinjaAPI(
    title="mailgrant",
    version="1",
    description="OAuth2 clients, grants, mailboxes and the token broker. Authenticate with "
    "'Authorization: Bearer <API key>' (scopes: read, write, tokens) or an admin "
    "session.",
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
)
errors.install(api)
api.add_router("/health", routers.health)
api.add_router("/oauth-clients", routers.clients)
api.add_router("/authorizations", routers.authorizations)
api.add_router("/grants", routers.grants)
api.add_router("/mailboxes", routers.mailboxes)
api.add_router("/messages", routers.messages)
