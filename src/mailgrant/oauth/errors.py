"""What can go wrong in oauth, each with a sentence for the administrator and a stable code."""

from __future__ import annotations


class OAuthServiceError(Exception):
    """A failure with a sentence for the administrator (`message`) and a stable `code`."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        if code:
            self.code = code


class AuthorizationFailed(OAuthServiceError):
    code = "authorization_failed"


class GrantUnusable(OAuthServiceError):
    """No valid access token can be had: the grant needs the admin (or the provider is down)."""

    code = "grant_unusable"


class InUse(OAuthServiceError):
    """Something still points at what was to be deleted; nothing was changed."""

    code = "in_use"


class OAuthClientInvalid(OAuthServiceError):
    code = "invalid"

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors
