"""Reading a request: who is calling, and an optional JSON body."""

from typing import TypeVar

from django.http import HttpRequest
from ninja import Schema
from ninja.errors import ValidationError as NinjaValidationError
from pydantic import ValidationError as PydanticValidationError

from mailgrant.api.auth import principal_of
from mailgrant.common.audit import Actor

BodyT = TypeVar("BodyT", bound=Schema)


def request_actor(request: HttpRequest) -> Actor:
    """Who the services record: the admin signed in (`user:<name>`), or the API key
    (`apikey:<name>`)."""
    return principal_of(request).actor


def optional_body(request: HttpRequest, schema: type[BodyT]) -> BodyT | None:
    """The JSON body as `schema`, or None when the request has none (an empty POST is fine)."""
    if request.content_type != "application/json" or not request.body.strip():
        return None
    try:
        return schema.model_validate_json(request.body)
    except PydanticValidationError as exc:
        raise NinjaValidationError([dict(e) for e in exc.errors()]) from None
