"""GET /status: the overall state, the counts by health, everything not ok, the workers."""

from dataclasses import asdict
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Router

from mailgrant.api.auth import scope
from mailgrant.api.errors import answers
from mailgrant.api.schemas import StatusOut
from mailgrant.worker.status import status_overview

router = Router(tags=["service"])

# It names every grant, client, mailbox and directory, with their errors: a session needs to
# be allowed to view each of them.
VIEW_ALL = (
    "oauth.view_grant",
    "oauth.view_oauthclient",
    "mailboxes.view_mailbox",
    "directory.view_ldapdirectory",
)


@router.get("", response=answers({200: StatusOut}), auth=scope("status", perm=VIEW_ALL))
def service_status(request: HttpRequest, response: HttpResponse) -> Any:
    """The worst health of any object (`warning` when no worker is alive), the number of
    objects in each health by kind, each object that is not ok with its reason and hint, and
    the workers alive with the age of their last beat. Switched-off objects count as
    `disabled` and make nothing bad."""
    response["Cache-Control"] = "no-store"
    return asdict(status_overview())
