"""The Content-Security-Policy header (settings.CONTENT_SECURITY_POLICY), through django-csp.

The policy's form-action is 'self', but a button that starts an authorization (a sign-in
button, Validate, Authorize) posts to mailgrant, which redirects to the provider, and browsers
check form-action along the redirects too. The page that shows such a button names the
provider's origin with `allow_form_target`, for that response only.
"""

from typing import Any
from urllib.parse import urlsplit

from csp.middleware import CSPMiddleware, PolicyParts
from django.http import HttpRequest
from django.http.response import HttpResponseBase

_ATTRIBUTE = "_mailgrant_form_targets"


def allow_form_target(request: HttpRequest | None, url: str) -> None:
    """Let this request's page post forms that end up at `url`'s origin."""
    parts = urlsplit(url)
    if request is None or parts.scheme not in {"http", "https"} or not parts.netloc:
        return
    targets: set[str] = getattr(request, _ATTRIBUTE, set())
    targets.add(f"{parts.scheme}://{parts.netloc}")
    setattr(request, _ATTRIBUTE, targets)


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        targets: Any = getattr(request, _ATTRIBUTE, None)
        if targets and not report_only:
            parts.update = {**(parts.update or {}), "form-action": sorted(targets)}
        return parts
