"""The admin index's health dashboard: the status overview, with the one action that fixes
each object not ok (Re-authorize, Test connection, Edit), as far as the user may see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import template
from django.urls import reverse

from mailgrant.common.csp import allow_form_target
from mailgrant.common.health import Health, HealthView
from mailgrant.mailboxes.models import Mailbox
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.oauth.selectors import oauth_client_authorize_url
from mailgrant.worker.status import KINDS, status_overview

register = template.Library()

VIEW = {
    "grant": "oauth.view_grant",
    "client": "oauth.view_oauthclient",
    "mailbox": "mailboxes.view_mailbox",
    "directory": "directory.view_ldapdirectory",
}
PLURAL = {
    "grant": "Grants",
    "client": "Clients",
    "mailbox": "Mailboxes",
    "directory": "Directories",
}
# What the action's view checks: Validate is a change of the client, the mailbox's Test and
# Authorize a change of the mailbox.
MAY_ACT = {"grant": "oauth.change_oauthclient", "mailbox": "mailboxes.change_mailbox"}
MAY_CHANGE = {
    "grant": "oauth.change_grant",
    "client": "oauth.change_oauthclient",
    "mailbox": "mailboxes.change_mailbox",
    "directory": "directory.change_ldapdirectory",
}
CHANGE_PAGE = {
    "grant": "admin:oauth_grant_change",
    "client": "admin:oauth_oauthclient_change",
    "mailbox": "admin:mailboxes_mailbox_change",
    "directory": "admin:directory_ldapdirectory_change",
}


@dataclass(frozen=True)
class Action:
    label: str
    url: str
    post: bool = False  # a button (POST, CSRF) rather than a link
    field: tuple[str, str] | None = None  # a value the button posts


@dataclass(frozen=True)
class Row:
    problem: HealthView
    edit_url: str
    action: Action


@register.simple_tag(takes_context=True)
def health_dashboard(context: Any) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    kinds = [k for k in KINDS if user is not None and user.has_perm(VIEW[k])]
    if user is None or not kinds:
        return {"visible": False}
    status = status_overview()
    problems = [p for p in status.problems if p.kind in kinds]
    grants = _grants([p.id for p in problems if p.kind == "grant"])
    mailboxes = _mailboxes([p.id for p in problems if p.kind == "mailbox"])
    rows = []
    for problem in problems:
        edit = reverse(CHANGE_PAGE[problem.kind], args=[problem.id])
        action = _action(problem, edit, grants, mailboxes)
        if action.post and not user.has_perm(MAY_ACT[problem.kind]):
            action = Action("Edit", edit)
        if not action.post and not user.has_perm(MAY_CHANGE[problem.kind]):
            action = Action("View", edit)  # the change page, read-only for this user
        if action.post and action.label == "Re-authorize":
            client = (grants.get(problem.id) if problem.kind == "grant" else None) or getattr(
                mailboxes.get(problem.id), "oauth_client", None
            )
            if client is not None:  # its form ends at the provider: the page's CSP says so
                allow_form_target(request, _authorize_url(client))
        rows.append(Row(problem=problem, edit_url=edit, action=action))
    return {
        "status": status,
        "healths": [h.label for h in Health],
        "counts": [(k, PLURAL[k], [status.counts[k][h.value] for h in Health]) for k in kinds],
        "rows": rows,
        "visible": True,
    }


def _grants(ids: list[int]) -> dict[int, OAuthClient]:
    """Each grant's client (one query)."""
    if not ids:
        return {}
    return {g.pk: g.client for g in Grant.objects.filter(pk__in=ids).select_related("client")}


def _mailboxes(ids: list[int]) -> dict[int, Mailbox]:
    if not ids:
        return {}
    return {m.pk: m for m in Mailbox.objects.filter(pk__in=ids).select_related("oauth_client")}


def _action(
    problem: HealthView, edit: str, grants: dict[int, OAuthClient], mailboxes: dict[int, Mailbox]
) -> Action:
    reauthorize = problem.health is Health.NEEDS_REAUTHORIZATION
    if problem.kind == "grant" and reauthorize and problem.id in grants:
        client = grants[problem.id]
        url = reverse("admin:oauth_oauthclient_validate", args=[client.pk])
        return Action("Re-authorize", url, post=True, field=("grant", str(problem.id)))
    mailbox = mailboxes.get(problem.id) if problem.kind == "mailbox" else None
    if mailbox is not None:
        oauth = mailbox.auth_method == Mailbox.AuthMethod.OAUTH2 and mailbox.oauth_client_id
        if reauthorize and oauth:
            url = reverse("admin:mailboxes_mailbox_authorize", args=[mailbox.pk])
            return Action("Re-authorize", url, post=True)
        if not problem.reason.startswith(("config.", "client.", "mailbox.")):
            url = reverse("admin:mailboxes_mailbox_test", args=[mailbox.pk])
            return Action("Test connection", url, post=True)
    return Action("Edit", edit)


def _authorize_url(client: OAuthClient) -> str:
    try:
        return oauth_client_authorize_url(client=client)
    except Exception:  # a client whose endpoints cannot be found now: its button says so later
        return ""
