"""The token broker's fast path, in front of its API route (POST /grants/{id}/access-token).

The common call, an active key with the tokens scope asking for a grant whose token can be
handed out as it is, is answered here with one SELECT, its audit row (spooled by a serving
process, see common.audit_spool, else one INSERT) and no framework machinery: through
django-ninja (authentication, parameter and answer models) it cost about 3 times a bare
endpoint, and the ratio is what bench/broker.py measures. Every other call (no key or an admin
session, an unknown or revoked key, another scope, an unknown grant, a token to refresh, an
error to report, input that is not plainly valid) goes to the route untouched, which answers
it as it always has. The checks are the route's: the key, its scope, the client's status, the
grant's state and the token's remaining life.

Both ways are counted for /metrics (requests by outcome, latency): two increments of
prometheus-client's values, cheap beside the answer's own cost.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from ninja.responses import NinjaJSONEncoder

from mailgrant.api.schemas import token_body
from mailgrant.api.services import access_token_issue_by_key
from mailgrant.common.metrics import BROKER_REQUESTS, BROKER_SECONDS

View = Callable[..., HttpResponse]

_MAX_VALID = 86400  # as the route's Query(le=86400)
_PLAIN_NUMBER = re.compile(r"\d{1,5}")
_PLAIN_ID = re.compile(r"[1-9]\d{0,18}")
_ENCODER = NinjaJSONEncoder()  # the API's JSON, as its renderer writes it
# The children looked up once: a label lookup per call would cost more than the increment.
_ISSUED = BROKER_REQUESTS.labels("issued")
_REFUSED = BROKER_REQUESTS.labels("refused")  # any error answer, the provider's included


def with_fast_path(route: View) -> View:
    """`route` (the API's view for the broker) with the common call answered first."""

    # csrf_exempt as the API's own views: a key is no cookie; a session goes to the route,
    # which checks CSRF itself.
    @csrf_exempt
    def broker(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        started = time.perf_counter()
        response = _answer(request, _grant_id(kwargs.get("grant_id"))) or route(
            request, *args, **kwargs
        )
        (_ISSUED if response.status_code < 300 else _REFUSED).inc()
        BROKER_SECONDS.observe(time.perf_counter() - started)
        return response

    return broker


def _grant_id(value: Any) -> int | None:
    """The path's grant id when it is plainly one (the route refuses anything else)."""
    text = str(value) if value is not None else ""
    return int(text) if _PLAIN_ID.fullmatch(text) else None


def _answer(request: HttpRequest, grant_id: int | None) -> HttpResponse | None:
    if request.method != "POST" or grant_id is None:
        return None
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    min_valid_seconds = _min_valid_seconds(request)
    if scheme.lower() != "bearer" or not key or min_valid_seconds is None:
        return None
    tokens = access_token_issue_by_key(
        key=key, grant_id=grant_id, min_valid_seconds=min_valid_seconds
    )
    if tokens is None:
        return None
    response = HttpResponse(
        _ENCODER.encode(token_body(tokens)),
        content_type="application/json; charset=utf-8",
    )
    response["Cache-Control"] = "no-store"
    return response


def _min_valid_seconds(request: HttpRequest) -> int | None:
    """As the route reads it (query string, then a JSON body), or None for anything that is
    not plainly valid: the route then says what is wrong."""
    value = 0
    if "min_valid_seconds" in request.GET:
        text = request.GET["min_valid_seconds"]
        if not _PLAIN_NUMBER.fullmatch(text) or int(text) > _MAX_VALID:
            return None
        value = int(text)
    if request.content_type == "application/json" and request.body.strip():
        try:
            body = json.loads(request.body)
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        field = body.get("min_valid_seconds", 0)
        # Only a plain integer in range; what else TokenRequest would accept goes to the route.
        if type(field) is not int or not 0 <= field <= _MAX_VALID:
            return None
        value = field
    return value
