"""The provider's redirect back to mailgrant after Validate."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from mailgrant.common.errors import ServiceError
from mailgrant.oauth.callbacks import completion_for
from mailgrant.oauth.selectors import authorization_purpose
from mailgrant.oauth.services.authorization import authorization_complete
from mailgrant.oauth.session import provider_answer


@never_cache
@require_GET
def callback(request: HttpRequest, client_id: int) -> HttpResponse:
    """An admin's Validate lands back in the admin; one started through the API or the command
    line completes in whatever browser signed in (its state is the only key), which then sees a
    plain page."""
    purpose = authorization_purpose(client_id=client_id, state=request.GET.get("state", ""))
    completion = completion_for(purpose=purpose)
    if completion is not None:  # another app's authorization (a sign-in): its view finishes it
        return completion(request, client_id)
    try:
        result = authorization_complete(client_id=client_id, **provider_answer(request))
    except ServiceError as exc:
        if not request.user.is_staff:
            return _plain(f"Authorization failed: {exc.message}", status=400)
        messages.error(request, f"Validate failed: {exc.message}")
    else:
        if not request.user.is_staff:
            return _plain(
                f"Authorized as {result.account or 'an unnamed account'}. "
                "You can close this window."
            )
        messages.success(request, f"Authorized as {result.account or 'an unnamed account'}.")
        for warning in result.warnings:
            messages.warning(request, warning)
        if result.return_url:
            return HttpResponseRedirect(result.return_url)
    return HttpResponseRedirect(reverse("admin:oauth_oauthclient_change", args=[client_id]))


def _plain(text: str, status: int = 200) -> HttpResponse:
    return HttpResponse(
        format_html("<!doctype html><title>mailgrant</title><p>{}</p>", text), status=status
    )
