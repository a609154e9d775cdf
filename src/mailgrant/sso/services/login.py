"""Single sign-on: start a sign-in with a user-type client, finish it, provision the user.

A sign-in is an authorization code + PKCE flow like Validate (state bound to the browser
session, single use, short-lived; nonce; RFC 9207 iss; ID token checked), but it stores no
grant: it finds or creates the Django user behind (client, subject) and signs them in.
Every sign-in, refusal (with its reason) and user creation writes an audit row.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from mailgrant.common.audit import SSO, Actor, AuditAction, audit_record
from mailgrant.common.errors import Refused, ServiceError
from mailgrant.directory.errors import DirectoryUserDisabled
from mailgrant.directory.models import LdapDirectory
from mailgrant.directory.services.login import directory_account_for_login
from mailgrant.oauth import protocol
from mailgrant.oauth.models import OAuthClient, PendingAuthorization
from mailgrant.oauth.protocol import ProviderError
from mailgrant.oauth.selectors import oauth_client_http
from mailgrant.oauth.services.authorization import (
    Exchanged,
    StartedAuthorization,
    authorization_consume,
    authorization_exchange,
    authorization_start,
)
from mailgrant.providers import USER, get_provider
from mailgrant.sandbox.expression import ExpressionError, expression_evaluate
from mailgrant.sso.claims import (
    MAPPABLE_FIELDS,
    ClaimMissing,
    ClaimPathError,
    ClaimTypeError,
    claim_at,
    claim_path_parse,
    field_value,
    user_fields_from_claims,
)
from mailgrant.sso.models import SignIn, SsoIdentity
from mailgrant.sso.selectors import sign_in_of
from mailgrant.sso.usernames import username_normalize, username_problem, username_taken

log = logging.getLogger(__name__)

# What a refused sign-in tells the person, by the code of the Validate machinery's refusal.
_STATE_MESSAGES = {
    "state_missing": "The provider's answer carries no state. Start the sign-in again.",
    "state_unknown": "This answer does not belong to a sign-in started here. Start again.",
    "state_replayed": "This sign-in answer was already used. Start the sign-in again.",
    "state_expired": "The sign-in took too long and expired. Start it again.",
    "state_unbound": "This sign-in was started in another browser. Start it again here.",
}


class LoginRefused(Refused):
    """A sign-in that did not happen, with the sentence the person sees."""

    code = "login_refused"


@dataclass(frozen=True)
class SignedIn:
    user: Any
    how: str  # "identity", "directory" or "created"
    return_url: str = ""
    notes: list[str] = field(default_factory=list)


class TooManySignIns(LoginRefused):
    """Too many sign-ins started and not finished: from this address, or from everyone."""

    status = 429
    code = "too_many_sign_ins"


def sso_login_start(
    *, client: OAuthClient, next_url: str = "", client_ip: str | None = None
) -> StartedAuthorization:
    """Start a sign-in. Anyone may, so nothing here grows without bound: the start writes no
    audit row (its completion or refusal does), and the started sign-ins still waiting are
    capped per client IP and overall, expired ones purged first."""
    if client.type != USER or not client.is_enabled:
        raise LoginRefused(f"{client.name} is not offered for sign-in.", code="client_unusable")
    _sign_in_starts_check(client_ip=client_ip)
    try:
        return authorization_start(
            client=client,
            purpose=PendingAuthorization.Purpose.LOGIN,
            return_url=next_url,
            client_ip=client_ip,
            audited=False,
        )
    except ServiceError as exc:
        _refusal_record(client=client, message=exc.message, code=exc.code)
        raise LoginRefused(exc.message, code=exc.code) from None


def _sign_in_starts_check(*, client_ip: str | None) -> None:
    now = timezone.now()
    starts = PendingAuthorization.objects.filter(purpose=PendingAuthorization.Purpose.LOGIN)
    # Nobody polls a sign-in once it expired (unlike an API Validate): it goes at once.
    starts.filter(expires_at__lte=now).delete()
    waiting = starts.filter(consumed_at__isnull=True)
    crowded = (
        client_ip is not None
        and waiting.filter(client_ip=client_ip).count() >= settings.MAILGRANT_SIGN_IN_STARTS_PER_IP
    ) or waiting.count() >= settings.MAILGRANT_SIGN_IN_STARTS_MAX
    if crowded:
        # Neither audited nor logged per try: that would be the flood's write again.
        raise TooManySignIns(
            "Too many sign-ins were started and not finished. Wait a few minutes, then try again.",
        )


def sso_login_complete(
    *,
    client_id: int,
    state: str,
    bindings: Collection[str] = (),
    code: str = "",
    error: str = "",
    error_description: str = "",
    iss: str | None = None,
) -> SignedIn:
    """Finish a sign-in from the provider's redirect; nothing is created unless all checks out."""
    client = OAuthClient.objects.filter(pk=client_id).first()
    pending: PendingAuthorization | None = None
    try:
        pending = authorization_consume(client_id=client_id, state=state, bindings=bindings)
        if pending.purpose != PendingAuthorization.Purpose.LOGIN:
            raise LoginRefused("This answer belongs to a Validate, not to a sign-in.")
        exchanged = authorization_exchange(
            pending=pending, code=code, error=error, error_description=error_description, iss=iss
        )
        if exchanged.client.type != USER:
            raise LoginRefused(f"{exchanged.client.name} is no longer a sign-in client.")
        claims = _user_claims(exchanged=exchanged)
        signed_in = _user_provision(
            client=exchanged.client, claims=claims, return_url=pending.return_url
        )
    except LoginRefused as exc:
        _refusal_record(client=client, message=exc.message, code=exc.code, pending=pending)
        raise
    except ServiceError as exc:
        message = _STATE_MESSAGES.get(exc.code, exc.message)
        _refusal_record(client=client, message=message, code=exc.code, pending=pending)
        raise LoginRefused(message, code=exc.code) from None
    PendingAuthorization.objects.filter(pk=pending.pk).update(
        outcome=PendingAuthorization.Outcome.SUCCEEDED,
        message=f"Signed in as {signed_in.user.get_username()}",
    )
    return signed_in


def _refusal_record(
    *,
    client: OAuthClient | None,
    message: str,
    code: str,
    pending: PendingAuthorization | None = None,
) -> None:
    if pending is None:
        # The answer matched no sign-in waiting here (replayed, expired, another browser's):
        # anyone can send those as often as they like, so they are logged, not audited.
        log.warning("Sign-in answer for %s refused (%s): %s", client, code, message)
        return
    with transaction.atomic():
        PendingAuthorization.objects.filter(pk=pending.pk).update(
            outcome=PendingAuthorization.Outcome.FAILED, message=message
        )
        audit_record(
            actor=SSO,
            target=client,
            action=AuditAction.SSO_LOGIN_REFUSED,
            outcome="refused",
            message=f"{code}: {message}",
        )
    log.info("Sign-in with %s refused (%s): %s", client, code, message)


# --- who signed in ---------------------------------------------------------------------------


def _user_claims(*, exchanged: Exchanged) -> dict[str, Any]:
    """The claims to provision from: the verified ID token's, or the user data endpoint's."""
    client, endpoints, tokens = exchanged.client, exchanged.endpoints, exchanged.tokens
    verified = bool(tokens.id_token and endpoints.jwks_uri and endpoints.issuer)
    claims = dict(exchanged.claims) if verified else {}
    if sign_in_of(client=client).user_data_source == SignIn.UserDataSource.ENDPOINT:
        url = client.userinfo_endpoint or endpoints.userinfo_url
        if not url:
            raise LoginRefused(
                f"{client.name} reads user data from its endpoint, but none is set.",
                code="userinfo_missing",
            )
        try:
            data = protocol.fetch_userinfo(
                http=oauth_client_http(client=client), url=url, access_token=tokens.access_token
            )
        except ProviderError as exc:
            raise LoginRefused(
                f"The user data endpoint answered: {exc.message}", code="userinfo_failed"
            ) from None
        # OpenID Connect: the user data must be about the person the ID token names.
        if claims.get("sub") and str(data.get("sub", claims["sub"])) != str(claims["sub"]):
            raise LoginRefused(
                "The user data endpoint describes another person than the ID token.",
                code="userinfo_subject_mismatch",
            )
        # What names the issuer and the organization stays the verified token's.
        token = {k: claims[k] for k in _token_claim_names(client) if k in claims}
        claims = {**data, "sub": claims.get("sub") or data.get("sub"), **token}
    elif not verified:
        raise LoginRefused(
            f"{client.name} reads user data from the ID token, but the provider sent none that "
            "could be checked (no ID token, or no issuer / JWKS known). Use the user data "
            "endpoint instead.",
            code="id_token_missing",
        )
    if not claims.get("sub"):
        raise LoginRefused("The provider named no subject (sub) for this person.")
    # The identity's issuer: the verified token's, else the client's when it has one issuer.
    if not verified:
        claims.pop("iss", None)
        if endpoints.issuer and "{tenantid}" not in endpoints.issuer:
            claims["iss"] = endpoints.issuer
    return claims


def _token_claim_names(client: OAuthClient) -> tuple[str, ...]:
    organization = get_provider(client.provider).organization_claim
    return ("iss", organization) if organization else ("iss",)


def _username_path(client: OAuthClient) -> str:
    preset = get_provider(client.provider).username_attribute.get(USER, "")
    return sign_in_of(client=client).username_attribute or preset or "email"


# --- provisioning ----------------------------------------------------------------------------


@dataclass
class _Plan:
    """What the sign-in will write, decided before the transaction opens (network calls and
    the expression's evaluation stay outside the write lock)."""

    issuer: str
    subject: str
    fields: dict[str, Any]
    identity: SsoIdentity | None = None
    directory_user: Any = None
    create: bool = False
    notes: list[str] = field(default_factory=list)


def _user_provision(*, client: OAuthClient, claims: dict[str, Any], return_url: str) -> SignedIn:
    plan = _plan_for(client=client, claims=claims)
    try:
        return _plan_apply(client=client, plan=plan, return_url=return_url)
    except IntegrityError:
        # Another sign-in of the same person (or username) won the race: decide again.
        plan = _plan_for(client=client, claims=claims)
        return _plan_apply(client=client, plan=plan, return_url=return_url)


def _plan_for(*, client: OAuthClient, claims: dict[str, Any]) -> _Plan:
    """Every sign-in passes the client's pins (verified email, organization); a first one
    must also be admitted by the user create expression, whether it creates a user or links
    a directory user. Only an admitted person learns whether a username is taken."""
    sign_in = sign_in_of(client=client)
    path = _username_path(client)
    claimed = _username_claim(claims=claims, path=path)
    _pins_check(client=client, sign_in=sign_in, claims=claims, path=path)
    issuer, subject = str(claims.get("iss") or ""), str(claims["sub"])
    fields, notes = user_fields_from_claims(sign_in.user_fields or {}, claims)
    username = username_normalize(claimed)
    fields["username"] = username
    plan = _Plan(issuer=issuer, subject=subject, fields=fields, notes=notes)

    identity = _identity_find(client=client, issuer=issuer, subject=subject)
    directories = (
        list(sign_in.related_ldaps.filter(status=LdapDirectory.Status.ENABLED))
        if sign_in.pk
        else []
    )
    if identity is not None:
        plan.identity = identity
        account = getattr(identity.user, "directory_account", None)
        if account is not None:
            _directory_lookup(directories=[account.directory], username=account.username)
        return plan
    account = None
    # A name the normalization changed ("alice ", fullwidth) is not the directory's: it is
    # looked up as a new user, where it meets the look-alike check.
    if directories and username == claimed:
        account = _directory_lookup(directories=directories, username=username)
    if account is not None:
        extra = _expression_decide(
            client=client, claims=claims, user={**fields, "directory": account.directory.name}
        )
        extra.pop("username", None)
        plan.fields.update(extra)
        plan.directory_user = account.user
        return plan
    plan.fields.update(_expression_decide(client=client, claims=claims, user=fields))
    # The expression may name the user itself: the final name is the one checked.
    username = username_normalize(str(plan.fields["username"]))
    if problem := username_problem(username):
        raise LoginRefused(
            f"The name {username!r} cannot name a user here: {problem}", code="username_invalid"
        )
    if username_taken(username):
        raise LoginRefused(
            f"A user named {username}, or one too like it, already exists here but has never "
            f"signed in with {client.name}. An administrator can link them (SSO identities).",
            code="username_taken",
        )
    plan.fields["username"] = username
    plan.create = True
    return plan


def _username_claim(*, claims: dict[str, Any], path: str) -> str:
    try:
        username = str(field_value("username", claim_at(claims, path)))
    except ClaimMissing:
        raise LoginRefused(
            f"The provider sent no {path!r} claim, which names the user here (username attribute).",
            code="username_missing",
        ) from None
    except (ClaimTypeError, ClaimPathError) as exc:
        raise LoginRefused(
            f"The {path!r} claim cannot name a user: {exc}.", code="username_missing"
        ) from None
    if not username.strip():
        raise LoginRefused(f"The {path!r} claim is empty.", code="username_missing")
    return username


def _pins_check(*, client: OAuthClient, sign_in: SignIn, claims: dict[str, Any], path: str) -> None:
    """The sign-in settings' own admission rules, at every sign-in."""
    if sign_in.email_verified_required and claim_path_parse(path)[0] == "email":
        verified = claims.get("email_verified")
        if verified is not True and str(verified).lower() != "true":
            raise LoginRefused(
                f"{client.name} names you by your email address, which the provider has not "
                "verified (email_verified). Verify it there, then sign in again.",
                code="email_unverified",
            )
    allowed = {str(o).lower() for o in sign_in.allowed_organizations or ()}
    if allowed:
        provider = get_provider(client.provider)
        value = claims.get(provider.organization_claim) if provider.organization_claim else None
        if not isinstance(value, str) or value.lower() not in allowed:
            raise LoginRefused(
                f"{client.name} admits only people of its allowed organizations "
                f"({provider.organization_claim or 'none'} claim), and yours is not one of them.",
                code="organization_refused",
            )


def _identity_find(*, client: OAuthClient, issuer: str, subject: str) -> SsoIdentity | None:
    """The identity of (issuer, subject), else one of the subject with no issuer yet (made by
    hand, or before identities had one), which this sign-in then completes."""
    found = SsoIdentity.objects.select_related("user").filter(client=client, subject=subject)
    return found.filter(issuer=issuer).first() or found.filter(issuer="").first()


def _directory_lookup(*, directories: list[LdapDirectory], username: str) -> Any:
    try:
        return directory_account_for_login(directories=directories, username=username)
    except DirectoryUserDisabled as exc:
        raise LoginRefused(str(exc), code="directory_user_disabled") from None


def _expression_decide(
    *, client: OAuthClient, claims: dict[str, Any], user: dict[str, Any]
) -> dict[str, Any]:
    """The fields the create expression adds; LoginRefused when it does not admit the person."""
    source = sign_in_of(client=client).user_create_expression.strip()
    if not source:
        raise LoginRefused(
            f"{client.name} does not create unknown users nor link new ones to directory users "
            "(its user create expression is empty). Ask an administrator for an account.",
            code="creation_disabled",
        )
    try:
        outcome = expression_evaluate(
            source,
            claims=claims,
            user=user,
            timeout=settings.MAILGRANT_EXPRESSION_TIMEOUT,
        )
    except ExpressionError as exc:
        raise LoginRefused(
            f"The user create expression of {client.name} failed: {exc}", code="expression_error"
        ) from None
    if not outcome.decision:
        raise LoginRefused(
            f"The user create expression of {client.name} does not allow an account for "
            f"{user.get('username')}.",
            code="expression_refused",
        )
    extra: dict[str, Any] = {}
    for name, value in (outcome.fields or {}).items():
        if name not in MAPPABLE_FIELDS:
            raise LoginRefused(
                f"The user create expression of {client.name} sets {name!r}, which a sign-in "
                f"may not set (only {', '.join(MAPPABLE_FIELDS)}).",
                code="expression_error",
            )
        try:
            extra[name] = field_value(name, value)
        except ClaimTypeError as exc:
            raise LoginRefused(
                f"The user create expression of {client.name} gave a bad value: {exc}.",
                code="expression_error",
            ) from None
    return extra


def _plan_apply(*, client: OAuthClient, plan: _Plan, return_url: str) -> SignedIn:
    now = timezone.now()
    with transaction.atomic():
        if plan.identity is not None:
            user = get_user_model().objects.select_for_update().get(pk=plan.identity.user_id)
            how = "identity"
            _refuse_inactive(user)
            _user_update(user=user, fields=plan.fields, directory_managed=_is_directory(user))
            SsoIdentity.objects.filter(pk=plan.identity.pk).update(
                last_login_at=now, issuer=plan.identity.issuer or plan.issuer
            )
        elif plan.directory_user is not None:
            user = plan.directory_user
            how = "directory"
            _refuse_inactive(user)
            _user_update(user=user, fields=plan.fields, directory_managed=True)
            SsoIdentity.objects.create(
                client=client,
                issuer=plan.issuer,
                subject=plan.subject,
                user=user,
                last_login_at=now,
            )
        else:
            how = "created"
            user = _user_create(fields=plan.fields)
            SsoIdentity.objects.create(
                client=client,
                issuer=plan.issuer,
                subject=plan.subject,
                user=user,
                last_login_at=now,
            )
            audit_record(
                actor=Actor(name=f"sso:{client.name}", user=user),
                target=user,
                action=AuditAction.SSO_USER_CREATED,
                message=f"created {user.get_username()} from {client.name}",
            )
        audit_record(
            actor=Actor.of(user),
            target=client,
            action=AuditAction.SSO_LOGIN,
            message=f"signed in as {user.get_username()} ({how})"
            + (f"; not mapped: {'; '.join(plan.notes)}" if plan.notes else ""),
        )
    log.info("Sign-in with %s as %s (%s)", client.name, user.get_username(), how)
    return SignedIn(user=user, how=how, return_url=return_url, notes=plan.notes)


def _refuse_inactive(user: AbstractBaseUser) -> None:
    if not user.is_active:
        raise LoginRefused(
            f"The account {user.get_username()} is disabled here.", code="user_inactive"
        )


def _is_directory(user: Any) -> bool:
    return getattr(user, "directory_account", None) is not None


# The directory owns these fields of its users; a sign-in never overwrites them.
_DIRECTORY_FIELDS = {"username", "email", "first_name", "last_name"}


def _user_update(*, user: Any, fields: dict[str, Any], directory_managed: bool) -> None:
    changed: list[str] = []
    for name, value in fields.items():
        # The username stays what it was at creation: a renamed email must not rename (or
        # collide with) the account.
        if name in {"username", "groups"} or (directory_managed and name in _DIRECTORY_FIELDS):
            continue
        if getattr(user, name) != value:
            setattr(user, name, value)
            changed.append(name)
    if changed:
        user.save(update_fields=changed)
    if "groups" in fields:
        user.groups.set(Group.objects.filter(name__in=fields["groups"]))


def _user_create(*, fields: dict[str, Any]) -> Any:
    model = get_user_model()
    values = {k: v for k, v in fields.items() if k != "groups"}
    user = model(**values)
    user.set_unusable_password()
    user.save()
    if fields.get("groups"):
        user.groups.set(Group.objects.filter(name__in=fields["groups"]))
    return user
