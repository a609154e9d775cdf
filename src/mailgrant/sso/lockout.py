"""Password guessing on the login pages (the admin's and /accounts/), local and directory
passwords alike: django-axes counts failures per client IP and per username, in the database
(so every serving process and machine sees the same count), and refuses further tries for a
while (MAILGRANT_LOGIN_FAILURE_LIMIT, MAILGRANT_LOGIN_LOCKOUT_SECONDS)."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.http import HttpRequest


class LoginThrottle(AxesStandaloneBackend):
    """Listed first: a locked-out IP or username is refused before any password is checked,
    so no LDAP bind or password hash is spent on it. A call without a request (a command, a
    test's client.login) is no guess from the network and is not counted."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        super().authenticate(request, username, password, **kwargs)
        return None


def login_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The username a try is counted against, as both backends match it: case and the
    surrounding blanks do not make another username to guess against."""
    field = get_user_model().USERNAME_FIELD
    value = (credentials or {}).get(field) or (credentials or {}).get("username")
    if value is None and request is not None:
        value = request.POST.get(field) or request.POST.get("username")
    return str(value or "").strip().casefold()


def login_attempts_reset(*, user: Any) -> int:
    """A person who signed in with their password proved it: their username's failures go.
    Only theirs: axes' own reset also wipes every failure from the same IP, which would let a
    guesser with any account of their own reset the count against others."""
    deleted, _ = AccessAttempt.objects.filter(
        username=str(user.get_username()).strip().casefold()
    ).delete()
    return deleted
