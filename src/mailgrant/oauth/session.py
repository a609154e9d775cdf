"""A started authorization's tie to the browser session, and the provider's answer as the
services take it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

SESSION_BINDINGS = "mailgrant_authorization_bindings"


def remember_binding(request: HttpRequest, binding: str) -> None:
    """Tie a started Validate to this browser session (the newest few are kept)."""
    bindings = request.session.get(SESSION_BINDINGS, [])
    request.session[SESSION_BINDINGS] = [*bindings, binding][-10:]


def provider_answer(request: HttpRequest) -> dict[str, Any]:
    """The provider's redirect, as authorization_complete and sso_login_complete take it."""
    params = request.GET
    return {
        "state": params.get("state", ""),
        "bindings": request.session.get(SESSION_BINDINGS, []),
        "code": params.get("code", ""),
        "error": params.get("error", ""),
        "error_description": params.get("error_description", ""),
        "iss": params.get("iss"),
    }
