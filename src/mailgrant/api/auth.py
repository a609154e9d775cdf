"""Who is calling: an API key (Authorization: Bearer) with scopes, or an admin's browser
session (CSRF checked on unsafe methods) with every scope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer, SessionAuthIsStaff

from mailgrant.api.models import ApiKey
from mailgrant.api.services import apikey_authenticate
from mailgrant.common.audit import Actor


class Forbidden(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the services record it, and what they may do."""

    actor: Actor
    scopes: frozenset[str]


class KeyAuth(HttpBearer):
    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = scope

    def authenticate(self, request: HttpRequest, token: str) -> Principal | None:
        key = apikey_authenticate(key=token)
        if key is None:
            return None
        if self.scope not in key.scopes:
            raise Forbidden(f"This API key lacks the {self.scope!r} scope.")
        principal = Principal(actor=Actor.api_key(key.name), scopes=key.scopes)
        request.principal = principal  # type: ignore[attr-defined]
        return principal


class StaffSession(SessionAuthIsStaff):
    def authenticate(self, request: HttpRequest, key: str | None) -> Principal | None:
        user = super().authenticate(request, key)
        if user is None:
            return None
        principal = Principal(actor=Actor.of(user), scopes=frozenset(ApiKey.Scope.values))
        request.principal = principal  # type: ignore[attr-defined]
        return principal


def scope(name: str) -> list[Any]:
    return [KeyAuth(name), StaffSession()]


def principal_of(request: HttpRequest) -> Principal:
    return request.principal  # type: ignore[attr-defined,no-any-return]
