"""Sign-in buttons: start at the provider, come back through the client's redirect URI."""

from __future__ import annotations

from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from mailgrant.oauth.models import OAuthClient
from mailgrant.oauth.session import provider_answer, remember_binding
from mailgrant.sso.selectors import sso_login_client
from mailgrant.sso.services.login import LoginRefused, sso_login_complete, sso_login_start


@never_cache
@require_POST
def start(request: HttpRequest, client_id: int) -> HttpResponse:
    try:
        client = sso_login_client(client_id=client_id)
    except OAuthClient.DoesNotExist:
        raise Http404("No such sign-in.") from None
    try:
        started = sso_login_start(
            client=client,
            next_url=request.POST.get("next", ""),
            client_ip=request.META.get("REMOTE_ADDR") or None,
        )
    except LoginRefused as exc:
        return refused(request, exc.message, status=exc.status)
    remember_binding(request, started.binding)
    return HttpResponseRedirect(started.url)


def complete(request: HttpRequest, client_id: int) -> HttpResponse:
    """Called by the client's redirect URI (mailgrant.oauth.views.callback) for a sign-in."""
    try:
        signed_in = sso_login_complete(client_id=client_id, **provider_answer(request))
    except LoginRefused as exc:
        return refused(request, exc.message)
    login(request, signed_in.user, backend="django.contrib.auth.backends.ModelBackend")
    default = reverse("admin:index") if signed_in.user.is_staff else reverse("sso:signed_in")
    return HttpResponseRedirect(signed_in.return_url or default)


def refused(request: HttpRequest, message: str, status: int = 403) -> HttpResponse:
    """A sign-in that did not happen: 403, or 429 when too many were started."""
    return render(
        request,
        "sso/refused.html",
        {"message": message, "login_url": reverse("login")},
        status=429 if status == 429 else 403,
    )


@login_required
def signed_in(request: HttpRequest) -> HttpResponse:
    return render(request, "sso/signed_in.html")
