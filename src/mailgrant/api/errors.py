"""Every error is JSON with a stable `code` and a human `message` (and `fields` for bad input)."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from mailgrant.api.auth import Forbidden
from mailgrant.api.schemas import Problem
from mailgrant.common.errors import ServiceError

log = logging.getLogger(__name__)

# Every route can answer bad input (400), a missing or unknown key (401) and a missing scope (403).
ALWAYS = (400, 401, 403)
# A route that reaches a provider or a mail server: what the admin must fix first (422), the
# peer's refusal (502) or its absence (503, whenever the error is transient).
PEER = (422, 502, 503)


def answers(success: dict[int, Any], *statuses: int) -> dict[int, Any]:
    """A route's documented responses: `success`, and a Problem for each error status it can
    give besides ALWAYS."""
    return {**success, **dict.fromkeys(sorted({*ALWAYS, *statuses}), Problem)}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def problem(
    api: NinjaAPI, request: HttpRequest, status: int, code: str, message: str, **extra: Any
) -> HttpResponse:
    response = api.create_response(
        request, {"code": code, "message": message, **extra}, status=status
    )
    response["Cache-Control"] = "no-store"
    return response


def _field_name(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "payload")]
    return ".".join(parts) or "body"


def install(api: NinjaAPI) -> None:
    def on(exc_class: type[Exception]) -> Any:
        return api.exception_handler(exc_class)

    @on(ApiError)
    def api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
        return problem(api, request, exc.status, exc.code, exc.message, **exc.extra)

    @on(NinjaValidationError)
    def validation(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
        fields = [
            {"field": _field_name(e.get("loc", ())), "message": e.get("msg", "invalid")}
            for e in exc.errors
        ]
        text = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return problem(
            api, request, 400, "validation_error", text or "Invalid input.", fields=fields
        )

    @on(ValidationError)
    def model_validation(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        data = exc.message_dict if hasattr(exc, "error_dict") else {"body": exc.messages}
        fields = [{"field": k, "message": " ".join(v)} for k, v in data.items()]
        return problem(
            api,
            request,
            400,
            "validation_error",
            "; ".join(f"{f['field']}: {f['message']}" for f in fields),
            fields=fields,
        )

    @on(ServiceError)
    def service_error(request: HttpRequest, exc: ServiceError) -> HttpResponse:
        extra: dict[str, Any] = {}
        if exc.fields:
            extra["fields"] = [{"field": k, "message": v} for k, v in exc.fields.items()]
        if exc.details:
            extra["details"] = exc.details
        return problem(api, request, exc.http_status, exc.code, exc.message, **extra)

    @on(AuthenticationError)
    def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return problem(
            api,
            request,
            401,
            "unauthorized",
            "Send a valid API key as 'Authorization: Bearer <key>'.",
        )

    @on(Forbidden)
    def forbidden(request: HttpRequest, exc: Forbidden) -> HttpResponse:
        return problem(api, request, 403, "forbidden", exc.message)

    @on(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        code = {
            400: "bad_request",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
        }.get(exc.status_code, "error")
        return problem(api, request, exc.status_code, code, str(exc))

    @on(Http404)
    def not_found(request: HttpRequest, exc: Exception) -> HttpResponse:
        return problem(api, request, 404, "not_found", "No such object.")

    @on(ObjectDoesNotExist)
    def does_not_exist(request: HttpRequest, exc: Exception) -> HttpResponse:
        return problem(api, request, 404, "not_found", "No such object.")

    @on(IntegrityError)
    def conflict(request: HttpRequest, exc: IntegrityError) -> HttpResponse:
        return problem(
            api,
            request,
            409,
            "conflict",
            "This conflicts with an existing object (a name must be unique).",
        )

    @on(Exception)
    def unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
        log.exception("API error on %s %s", request.method, request.path)
        return problem(api, request, 500, "server_error", "Something went wrong on our side.")
