"""One family for every failure a service reports: a sentence for the person (`message`), a
stable `code`, the HTTP status an API answers with, whether trying again later may succeed
(`transient`: the API answers 503 whatever the class), and the fields at fault.

No Django here: protocol-facing code raises these too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ServiceError(Exception):
    code = "error"
    status = 502

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        transient: bool = False,
        fields: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.fields: dict[str, str] = dict(fields or {})
        self.details: dict[str, Any] | None = dict(details) if details else None
        if code:
            self.code = code

    @property
    def http_status(self) -> int:
        return 503 if self.transient else self.status


class Invalid(ServiceError):
    """Input that cannot be used as it is; `fields` says which and why."""

    code = "validation_error"
    status = 400

    def __init__(self, fields: Mapping[str, str], *, message: str = "", code: str = "") -> None:
        text = message or "; ".join(f"{name}: {problem}" for name, problem in fields.items())
        super().__init__(text, code=code or None, fields=fields)


class NotFound(ServiceError):
    code = "not_found"
    status = 404


class Conflict(ServiceError):
    """It clashes with what exists (a name taken); nothing was changed."""

    code = "conflict"
    status = 409


class InUse(Conflict):
    """Something still points at what was to be deleted; nothing was changed."""

    code = "in_use"


class NeedsAdmin(ServiceError):
    """It cannot go on until an administrator acts: a disabled client, a grant to authorize
    again, a setting missing."""

    code = "needs_admin"
    status = 422


class PeerFailed(ServiceError):
    """A provider, mail server or directory refused or could not be reached (`transient`
    when trying again later may succeed)."""

    code = "peer_failed"
    status = 502


class Refused(ServiceError):
    """A request that is understood and will not be carried out as it stands (a forged,
    replayed or expired authorization answer, a sign-in the rules refuse)."""

    code = "refused"
    status = 400
