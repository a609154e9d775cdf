"""The worker's refresh job against Microsoft's and Google's own refusals, served by a fake on a
real socket (no local peer can be them): each refusal classified with its reason and hint, a
dead grant not retried, a passing failure backed off and recovered.

The error bodies are those the providers document: Microsoft identity platform's token
endpoint errors (learn.microsoft.com/entra/identity-platform/reference-error-codes: "error",
"error_description" starting with the AADSTS code, "error_codes", trace and correlation ids;
tests.servers.fakes.aadsts_error), and Google's OAuth 2.0 token endpoint
(developers.google.com/identity/protocols/oauth2#expiration: a dead refresh token answers 400
invalid_grant "Token has been expired or revoked.")."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from mailgrant.common.errors import ServiceError
from mailgrant.common.jobs import InlineContext
from mailgrant.common.models import AuditEvent
from mailgrant.oauth.broker import grant_use_forget
from mailgrant.oauth.jobs import grants_refresh_due
from mailgrant.oauth.models import Grant, OAuthClient
from mailgrant.oauth.services.tokens import access_token_for, grant_refresh_claimed
from tests.servers.fakes import GOOGLE_INVALID_GRANT, Canned, aadsts_error

pytestmark = pytest.mark.django_db

OK = {"access_token": "at-new", "expires_in": 3600, "refresh_token": "rt-new"}


@pytest.fixture(autouse=True)
def _uses_forgotten():
    grant_use_forget()
    yield
    grant_use_forget()


def _run(worker: str = "w1") -> InlineContext:
    ctx = InlineContext(worker=worker, now=timezone.now())
    grants_refresh_due(ctx)
    return ctx


def _due_grant(make_client, make_grant, fake_provider, provider: str = "azure", **kw) -> Grant:
    client = make_client(provider=provider, token_url=f"{fake_provider.url}/token")
    grant = make_grant(client, **kw)
    Grant.objects.filter(pk=grant.pk).update(next_refresh_at=timezone.now())
    return grant


REFUSALS = [
    (
        aadsts_error("invalid_grant", 700082, "The refresh token has expired due to inactivity."),
        "refresh.expired_inactive",
        "90 days",
    ),
    (
        aadsts_error(
            "invalid_grant",
            50076,
            "Due to a configuration change made by your administrator, or because you moved "
            "to a new location, you must use multi-factor authentication to access '0000'.",
        ),
        "refresh.mfa_required",
        "multi-factor",
    ),
    (
        aadsts_error(
            "invalid_grant", 50079, "Due to a configuration change ... you must enroll in MFA."
        ),
        "refresh.mfa_required",
        "aka.ms/mfasetup",
    ),
    (
        aadsts_error(
            "invalid_grant",
            65001,
            "The user or administrator has not consented to use the application with ID '1'.",
        ),
        "refresh.consent_required",
        "admin consent",
    ),
    (
        aadsts_error("invalid_grant", 53003, "Access has been blocked by Conditional Access."),
        "refresh.conditional_access",
        "Conditional Access",
    ),
    (
        aadsts_error(
            "invalid_client", 7000222, "The provided client secret keys for app '1' are expired."
        ),
        "client.secret_expired",
        "Certificates & secrets",
    ),
    (
        aadsts_error(
            "unauthorized_client",
            700016,
            "Application with identifier '1' was not found in the directory 'contoso'.",
        ),
        "client.wrong_app_or_tenant",
        "single-tenant",
    ),
    (
        aadsts_error("invalid_request", 9002313, "Invalid request. Request is malformed."),
        "request.malformed",
        "scopes",
    ),
    (
        aadsts_error("invalid_client", 7000215, "Invalid client secret provided."),
        "client.invalid_client",
        "not its Secret ID",
    ),
]


@pytest.mark.parametrize(("canned", "reason", "hint"), REFUSALS, ids=[r[1] for r in REFUSALS])
def test_a_refusal_is_classified_and_never_retried(
    make_client, make_grant, fake_provider, canned, reason, hint
) -> None:
    fake_provider.answer("/token", canned)
    grant = _due_grant(make_client, make_grant, fake_provider)
    ctx = _run()
    assert ctx.results == [
        "reauthorization_required" if reason.startswith("refresh.") else "provider_error"
    ]
    grant.refresh_from_db()
    assert grant.health_reason == reason and hint in grant.health_hint
    expected = "needs_reauthorization" if reason.startswith("refresh.") else "failing"
    assert grant.health == expected and grant.consecutive_failures == 1
    assert grant.next_refresh_at is None and grant.refresh_claimed_by == ""
    # Neither the worker nor a caller asks the provider again.
    _run()
    with pytest.raises(ServiceError):
        access_token_for(grant=Grant.objects.get(pk=grant.pk))
    assert len(fake_provider.requests_to("/token")) == 1
    client = OAuthClient.objects.get(pk=grant.client_id)
    if reason.startswith("client."):
        assert client.health == "failing" and client.health_reason == reason
    else:
        assert client.health == "ok"


def test_an_expired_secret_sets_when_it_expired(make_client, make_grant, fake_provider) -> None:
    fake_provider.answer("/token", REFUSALS[5][0])
    grant = _due_grant(make_client, make_grant, fake_provider)
    later = timezone.now() + timedelta(days=200)
    OAuthClient.objects.filter(pk=grant.client_id).update(secret_expires_at=later)
    before = timezone.now()
    _run()
    client = OAuthClient.objects.get(pk=grant.client_id)
    assert before <= client.secret_expires_at <= timezone.now()


def test_a_new_secret_brings_the_grant_back(make_client, make_grant, fake_provider) -> None:
    from mailgrant.oauth.services.clients import oauth_client_save

    fake_provider.answer("/token", REFUSALS[5][0], OK)
    grant = _due_grant(make_client, make_grant, fake_provider)
    _run()
    client = OAuthClient.objects.get(pk=grant.client_id)
    client.secret_expires_at = timezone.now() + timedelta(days=365)
    oauth_client_save(client=client, client_secret="the-new-secret")
    assert OAuthClient.objects.get(pk=client.pk).health == "ok"
    _run()
    grant.refresh_from_db()
    assert grant.health == "ok" and grant.tokens().access_token == "at-new"
    assert grant.state == Grant.State.AUTHORIZED
    assert len(fake_provider.requests_to("/token")) == 2


def test_google_revoked_or_testing_app(make_client, make_grant, fake_provider) -> None:
    fake_provider.answer("/token", GOOGLE_INVALID_GRANT)
    grant = _due_grant(make_client, make_grant, fake_provider, provider="google")
    _run()
    grant.refresh_from_db()
    assert grant.health == "needs_reauthorization" and grant.health_reason == "refresh.revoked"
    for words in ("revoked", "Testing", "7 days", "Publish app"):
        assert words in grant.health_hint
    assert grant.state == Grant.State.REAUTHORIZATION_REQUIRED


def test_a_generic_invalid_grant(make_client, make_grant, fake_provider) -> None:
    fake_provider.answer("/token", Canned(400, {"error": "invalid_grant"}))
    grant = _due_grant(make_client, make_grant, fake_provider, provider="generic")
    _run()
    grant.refresh_from_db()
    assert grant.health_reason == "refresh.invalid_grant" and grant.next_refresh_at is None


def test_an_outage_backs_off_and_recovers(make_client, make_grant, fake_provider) -> None:
    down = Canned(503, b"<html>Service Unavailable</html>", {"Content-Type": "text/html"})
    fake_provider.answer("/token", down, down, OK)
    grant = _due_grant(make_client, make_grant, fake_provider)
    waits = []
    for failures in (1, 2):
        start = timezone.now()
        _run()
        grant.refresh_from_db()
        assert grant.health == "failing" and grant.health_reason == "provider.unavailable"
        assert grant.consecutive_failures == failures and grant.state == Grant.State.AUTHORIZED
        waits.append((grant.next_refresh_at - start).total_seconds())
        assert _run().results == []  # not due again before its backoff
        Grant.objects.filter(pk=grant.pk).update(next_refresh_at=timezone.now())
    # Equal jitter: the first wait in [15, 30] s, the second in [30, 60] s.
    assert 14 <= waits[0] <= 31 and 29 <= waits[1] <= 61, waits
    _run()
    grant.refresh_from_db()
    assert grant.health == "ok" and grant.health_reason == "" and grant.consecutive_failures == 0
    assert grant.tokens().access_token == "at-new"


def test_an_unreachable_provider(make_client, make_grant) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client(token_url=f"http://127.0.0.1:{port}/token")
    grant = make_grant(client)
    Grant.objects.filter(pk=grant.pk).update(next_refresh_at=timezone.now())
    _run()
    grant.refresh_from_db()
    assert grant.health == "failing" and grant.health_reason == "provider.unreachable"
    assert grant.next_refresh_at > timezone.now()


def test_a_due_is_claimed_once(make_client, make_grant, fake_provider) -> None:
    fake_provider.answer("/token", OK)
    grant = _due_grant(make_client, make_grant, fake_provider)
    first = InlineContext(worker="w1", now=timezone.now())
    # w1 claims but has not run its work yet; w2 finds nothing due.
    submitted = []
    first.submit = lambda work, label: submitted.append(work)  # type: ignore[method-assign]
    assert grants_refresh_due(first) == 1
    assert Grant.objects.get(pk=grant.pk).refresh_claimed_by == "w1"
    assert _run("w2").results == []
    assert [work() for work in submitted] == ["ok"]
    assert len(fake_provider.requests_to("/token")) == 1


def test_a_grant_refreshed_meanwhile_is_skipped(make_client, make_grant, fake_provider) -> None:
    """A claim whose worker was too slow (its claim ran out, another refreshed the grant) does
    not spend the refresh token again."""
    fake_provider.answer("/token", OK)
    grant = _due_grant(make_client, make_grant, fake_provider)
    ctx = InlineContext(worker="slow", now=timezone.now())
    submitted = []
    ctx.submit = lambda work, label: submitted.append(work)  # type: ignore[method-assign]
    grants_refresh_due(ctx)
    claim = Grant.objects.get(pk=grant.pk).next_refresh_at
    # The claim ran out; another worker claimed and refreshed.
    Grant.objects.filter(pk=grant.pk).update(next_refresh_at=timezone.now())
    assert _run("fast").results == ["ok"]
    assert grant_refresh_claimed(grant_id=grant.pk, due_at=claim, actor=ctx_actor()) == "ok"
    assert [work() for work in submitted] == ["ok"]
    assert len(fake_provider.requests_to("/token")) == 1
    assert Grant.objects.get(pk=grant.pk).refresh_count == 1


def ctx_actor():
    from mailgrant.common.audit import Actor

    return Actor(name="worker:slow")


def test_idle_grants_are_kept_alive_with_jitter(
    make_client, make_grant, fake_provider, settings
) -> None:
    settings.MAILGRANT_KEEPALIVE = 7 * 24 * 3600
    fake_provider.answer("/token", OK)
    client = make_client(token_url=f"{fake_provider.url}/token")
    grants = []
    for i in range(20):
        grants.append(make_grant(client, account=f"a{i}@example.test"))
        Grant.objects.filter(is_default=True).update(is_default=False)
    Grant.objects.filter(pk__in=[g.pk for g in grants]).update(next_refresh_at=timezone.now())
    ctx = _run()
    assert ctx.results == ["ok"] * 20
    now = timezone.now()
    nexts = list(Grant.objects.values_list("next_refresh_at", flat=True))
    keepalive = timedelta(seconds=settings.MAILGRANT_KEEPALIVE)
    assert all(now + 0.89 * keepalive <= n <= now + keepalive for n in nexts), nexts
    assert len(set(nexts)) == 20  # spread, not all in the same second
    labels = AuditEvent.objects.filter(action="grant.refreshed").values_list("actor", flat=True)
    assert set(labels) == {"worker:w1"}


def test_a_grant_in_use_is_refreshed_ahead(make_client, make_grant, fake_provider) -> None:
    fake_provider.answer("/token", OK)
    client = make_client(token_url=f"{fake_provider.url}/token")
    grant = make_grant(client, expires_in=3000)
    Grant.objects.filter(pk=grant.pk).update(next_refresh_at=timezone.now() + timedelta(days=6))
    access_token_for(grant=Grant(pk=grant.pk))  # a use brings the refresh ahead of expiry
    grant.refresh_from_db()
    assert grant.last_used_at is not None
    ahead = (grant.expires_at - grant.next_refresh_at).total_seconds()
    assert ahead == pytest.approx(360, abs=1)  # margin 300 s + a minute's lead
    # Another use within the minute writes nothing.
    Grant.objects.filter(pk=grant.pk).update(last_used_at=None)
    access_token_for(grant=Grant(pk=grant.pk))
    assert Grant.objects.get(pk=grant.pk).last_used_at is None
    Grant.objects.filter(pk=grant.pk).update(
        next_refresh_at=timezone.now(), last_used_at=timezone.now()
    )
    _run()
    grant.refresh_from_db()
    ahead = (grant.expires_at - grant.next_refresh_at).total_seconds()
    assert ahead == pytest.approx(360, abs=1)


def test_a_disabled_client_stops_its_grants(make_client, make_grant, fake_provider) -> None:
    from mailgrant.oauth.services.clients import oauth_client_set_status

    fake_provider.answer("/token", OK)
    grant = _due_grant(make_client, make_grant, fake_provider)
    client = OAuthClient.objects.get(pk=grant.client_id)
    oauth_client_set_status(client=client, status="disabled")
    grant.refresh_from_db()
    assert grant.health == "disabled" and grant.next_refresh_at is None
    assert OAuthClient.objects.get(pk=client.pk).health == "disabled"
    assert _run().results == []
    oauth_client_set_status(client=client, status="enabled")
    assert OAuthClient.objects.get(pk=client.pk).health == "ok"
    assert _run().results == ["ok"]
    grant.refresh_from_db()
    assert grant.health == "ok"
