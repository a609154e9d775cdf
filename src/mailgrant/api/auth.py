"""Who is calling, and whether they may: an API key (Authorization: Bearer) by its scopes, or an
admin's browser session (CSRF checked on unsafe methods) by its Django permissions.

Each route declares both in one place, `auth=scope("read", perm="oauth.view_grant")`: the scope a
key needs and the permission a session needs. Being staff only opens the admin; what a session
may do through the API is what its permissions (its own, its groups', everything for a superuser)
let it do in the admin, so that a staff flag mapped from an IdP's claims gives no right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from ninja.errors import AuthenticationError
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
            # A request that names a key is that key's: unknown, revoked or expired is the
            # documented 401, never a fall-back to the browser session the request may also carry.
            raise AuthenticationError
        if self.scope not in key.scopes:
            raise Forbidden(f"This API key lacks the {self.scope!r} scope.")
        principal = Principal(actor=Actor.api_key(key.name), scopes=key.scopes)
        request.principal = principal  # type: ignore[attr-defined]
        return principal


class StaffSession(SessionAuthIsStaff):
    def __init__(self, scope: str, perm: str | tuple[str, ...]) -> None:
        super().__init__()
        self.scope = scope
        self.perms = (perm,) if isinstance(perm, str) else perm

    def authenticate(self, request: HttpRequest, key: str | None) -> Principal | None:
        user = super().authenticate(request, key)
        if user is None:
            return None
        for perm in self.perms:
            if not user.has_perm(perm):
                raise Forbidden(f"Your account lacks the permission {perm!r}.")
        principal = Principal(actor=Actor.of(user), scopes=frozenset({self.scope}))
        request.principal = principal  # type: ignore[attr-defined]
        return principal


def scope(name: str, *, perm: str | tuple[str, ...]) -> list[Any]:
    """A route's authentication: a key with the scope `name`, or an admin session holding the
    Django permission `perm` ("app_label.codename"; a tuple: each of them)."""
    if name not in ApiKey.Scope.values:
        raise ValueError(f"Unknown API scope {name!r}.")
    return [KeyAuth(name), StaffSession(name, perm)]


def principal_of(request: HttpRequest) -> Principal:
    return request.principal  # type: ignore[attr-defined,no-any-return]
