"""A client with its sign-in settings, as one form: the admin, the API and the command line
give the client's fields and the sign-in fields together, flat, and get one answer.

The client half is oauth's (oauth_client_apply / oauth_client_save); the sign-in half
(SignIn) is checked here: claim paths, the icon, the create expression (compiled now, so a
syntax error shows when the client is saved, with its position, not at someone's sign-in)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from django.db import transaction

from mailgrant.common.audit import SYSTEM, Actor
from mailgrant.common.errors import Invalid
from mailgrant.directory.models import LdapDirectory
from mailgrant.oauth.models import OAuthClient
from mailgrant.oauth.selectors import OAUTH_CLIENT_FIELDS
from mailgrant.oauth.services.clients import (
    oauth_client_apply,
    oauth_client_errors,
    oauth_client_save,
)
from mailgrant.providers import get_provider
from mailgrant.sandbox.expression import ExpressionSyntaxError, expression_compile
from mailgrant.sso.claims import ClaimPathError, claim_path_parse, user_fields_check
from mailgrant.sso.icons import icon_name_check
from mailgrant.sso.models import SignIn
from mailgrant.sso.selectors import SIGN_IN_FIELDS, sign_in_of


def sign_in_check(*, sign_in: SignIn, provider: str) -> dict[str, str]:
    """Field errors of the sign-in settings as they stand, for a client of `provider`."""
    errors: dict[str, str] = {}
    if problem := _organizations_check(sign_in.allowed_organizations, provider=provider):
        errors["allowed_organizations"] = problem
    if mapping_errors := user_fields_check(sign_in.user_fields):
        errors["user_fields"] = "; ".join(
            message if name == "user_fields" else f"{name}: {message}"
            for name, message in mapping_errors.items()
        )
    if sign_in.username_attribute:
        try:
            claim_path_parse(sign_in.username_attribute)
        except ClaimPathError as exc:
            errors["username_attribute"] = str(exc)
    if icon_error := icon_name_check(sign_in.login_button_icon):
        errors["login_button_icon"] = icon_error
    if sign_in.user_create_expression.strip():
        try:
            expression_compile(sign_in.user_create_expression)
        except ExpressionSyntaxError as exc:
            errors["user_create_expression"] = str(exc)
    return errors


def _organizations_check(value: Any, *, provider: str) -> str:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return "a list of names"
    if not value:
        return ""
    try:
        preset = get_provider(provider)
    except KeyError:
        return ""  # the provider field has its own error
    return next((p for p in map(preset.organization_check, value) if p), "")


def client_create(
    *, values: Mapping[str, Any], client_secret: str | None = None, actor: Actor = SYSTEM
) -> OAuthClient:
    """A new client from flat `values` (the client's fields and the sign-in fields); what is
    not given takes its default, or the provider preset's."""
    return _client_apply_and_save(
        client=OAuthClient(), values=values, client_secret=client_secret, actor=actor
    )


def client_update(
    *,
    client: OAuthClient,
    values: Mapping[str, Any],
    client_secret: str | None = None,
    actor: Actor = SYSTEM,
) -> OAuthClient:
    """Change the fields given in `values` (None restores a field's default); the others stay."""
    return _client_apply_and_save(
        client=client, values=values, client_secret=client_secret, actor=actor
    )


def _client_apply_and_save(
    *,
    client: OAuthClient,
    values: Mapping[str, Any],
    client_secret: str | None,
    actor: Actor,
) -> OAuthClient:
    unknown = sorted(set(values) - {*OAUTH_CLIENT_FIELDS, *SIGN_IN_FIELDS, "related_ldaps"})
    if unknown:
        raise Invalid(dict.fromkeys(unknown, "not a field of an OAuth client"))
    oauth_client_apply(
        client=client, values={k: v for k, v in values.items() if k in OAUTH_CLIENT_FIELDS}
    )
    sign_in = sign_in_of(client=client)
    for name in SIGN_IN_FIELDS:
        if name in values:
            value = values[name]
            setattr(sign_in, name, value if value is not None else _default(name))
    directories = (
        related_ldaps_resolve(values["related_ldaps"]) if "related_ldaps" in values else None
    )
    errors = oauth_client_errors(client=client)
    for name, problem in sign_in_check(sign_in=sign_in, provider=client.provider).items():
        errors.setdefault(name, problem)
    if errors:
        raise Invalid(errors)
    return client_save(
        client=client,
        sign_in=sign_in,
        related_ldaps=directories,
        client_secret=client_secret,
        actor=actor,
    )


def _default(name: str) -> Any:
    return SignIn._meta.get_field(name).get_default()  # type: ignore[union-attr]


def related_ldaps_resolve(wanted: Collection[int | str] | None) -> list[LdapDirectory]:
    """The LDAP directories named by id (the API) or by name (the command line); None or an
    empty name clears them; an unknown one is bad input naming the field."""
    ids = {w for w in wanted or () if isinstance(w, int)}
    names = {w for w in wanted or () if isinstance(w, str) and w}
    found = list(LdapDirectory.objects.filter(pk__in=ids)) + list(
        LdapDirectory.objects.filter(name__in=names)
    )
    missing_ids = sorted(ids - {d.pk for d in found})
    if missing_ids:
        raise Invalid({"related_ldaps": f"No LDAP directory with id {missing_ids[0]}."})
    missing_names = sorted(names - {d.name for d in found})
    if missing_names:
        raise Invalid({"related_ldaps": f"No LDAP directory named {missing_names[0]!r}."})
    return found


def client_save(
    *,
    client: OAuthClient,
    sign_in: SignIn,
    related_ldaps: Collection[LdapDirectory] | None = None,
    client_secret: str | None = None,
    actor: Actor = SYSTEM,
) -> OAuthClient:
    """Save the client (with its audit row) and its sign-in settings in one transaction.
    Every client keeps its settings, whatever its type, so a type changed back and forth
    loses nothing."""
    with transaction.atomic():
        oauth_client_save(client=client, client_secret=client_secret, actor=actor)
        sign_in.client = client
        sign_in.save()
        if related_ldaps is not None:
            sign_in.related_ldaps.set(related_ldaps)
    return client
