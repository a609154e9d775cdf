"""Grants and tokens as the `client` and `grant` commands show them."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from mailgrant.api.schemas import token_body
from mailgrant.cli.support import human, json_text
from mailgrant.oauth.models import Grant, OAuthClient, PendingAuthorization
from mailgrant.oauth.protocol import TokenSet
from mailgrant.oauth.selectors import (
    authorization_get,
    grant_get,
    grant_public,
    oauth_client_get_by_name,
)
from mailgrant.oauth.services.authorization import StartedAuthorization

POLL_SECONDS = 1.0


def client_named(name: str) -> OAuthClient:
    try:
        return oauth_client_get_by_name(name=name)
    except OAuthClient.DoesNotExist:
        raise CommandError(f"No OAuth client named {name!r}.") from None


def grant_numbered(grant_id: int, *, client: OAuthClient | None = None) -> Grant:
    try:
        grant = grant_get(grant_id=grant_id)
    except Grant.DoesNotExist:
        raise CommandError(f"No grant {grant_id}.") from None
    if client is not None and grant.client_id != client.pk:
        raise CommandError(f"Grant {grant_id} belongs to client {grant.client.name}, not {client}.")
    return grant


def grant_row(grant: Grant) -> dict[str, Any]:
    return {**grant_public(grant=grant), "client": grant.client.name}


def write_grants(command: BaseCommand, grants: Iterable[Grant], *, as_json: bool) -> None:
    rows = [grant_row(g) for g in grants]
    if as_json:
        command.stdout.write(json_text(rows))
        return
    for r in rows:
        default = "default" if r["is_default"] else ""
        command.stdout.write(
            f"{r['id']:>5} {r['client']:25} {r['account'] or '-':30} {r['state']:25} "
            f"{default:7} {human(r['expires_at'])}"
        )


def write_grant(command: BaseCommand, grant: Grant, *, as_json: bool) -> None:
    row = grant_row(grant)
    if as_json:
        command.stdout.write(json_text(row))
        return
    for key, value in row.items():
        command.stdout.write(f"{key + ':':17} {human(value)}")


def refreshed_text(grant: Grant) -> str:
    until = f"; access token valid until {human(grant.expires_at)}" if grant.expires_at else ""
    return f"Refreshed grant {grant.pk} of {grant.client.name} ({grant.account or '-'}){until}."


def write_token(command: BaseCommand, tokens: TokenSet, *, as_json: bool) -> None:
    """The access token alone (`TOKEN=$(mailgrant ... token ...)`), or the API broker's JSON."""
    if not as_json:
        command.stdout.write(tokens.access_token)
        return
    command.stdout.write(json_text(token_body(tokens)))


def write_authorization(command: BaseCommand, started: StartedAuthorization, *, wait: bool) -> None:
    """The authorize URL alone on stdout (`URL=$(mailgrant client validate ...)`), the advice on
    stderr; with `wait`, the outcome once someone signed in (CommandError when refused)."""
    pending = started.pending
    command.stdout.write(started.url)
    command.stdout.flush()
    command.stderr.write(
        f"Open this URL in any browser and sign in; it expires at "
        f"{human(timezone.localtime(pending.expires_at))} (authorization {pending.pk})."
    )
    if not wait:
        return
    try:
        while True:
            pending = authorization_get(authorization_id=pending.pk)
            if pending.outcome == PendingAuthorization.Outcome.SUCCEEDED:
                command.stdout.write(f"{pending.message} (grant {pending.result_grant_id}).")
                return
            if pending.outcome == PendingAuthorization.Outcome.FAILED:
                raise CommandError(pending.message)
            if pending.expires_at <= timezone.now():
                raise CommandError(
                    "No one signed in before the authorization expired: start it again."
                )
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        raise CommandError(
            f"Stopped waiting; the URL still works until it expires (authorization {pending.pk})."
        ) from None
