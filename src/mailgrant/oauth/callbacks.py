"""Who finishes an authorization besides Validate: the client's one redirect URI serves every
purpose, and an app that starts authorizations of its own (sign-in) registers the view that
finishes them. oauth knows none of them."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

Completion = Callable[[HttpRequest, int], HttpResponse]

_completions: dict[str, Completion] = {}


def completion_register(*, purpose: str, view: Completion) -> None:
    """`view(request, client_id)` answers the provider's redirect of authorizations started
    with `purpose` (PendingAuthorization.Purpose)."""
    _completions[purpose] = view


def completion_for(*, purpose: str | None) -> Completion | None:
    return _completions.get(purpose) if purpose else None
