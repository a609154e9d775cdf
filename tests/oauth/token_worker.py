"""A separate process for the multi-process refresh tests (run as `python -m`):

    setup ISSUER LOGIN PASSWORD   create a client at the test provider, validate it, print
                                  its name and grant id as JSON
    reveal GRANT_ID               print the grant's current token set as JSON (for canaries)
    tokens GRANT_ID THREADS START ask for an access token from THREADS threads at once at the
                                  epoch time START; print one JSON list of the tokens
    grants ISSUER LOGIN PASSWORD N
                                  one client at the test provider with N validated grants of
                                  LOGIN, all due for their refresh now; print the client as JSON
    job THREADS START             from the epoch time START, run the worker's refresh job
                                  (oauth.jobs.grants_refresh_due) in THREADS threads until
                                  nothing is due; print the outcomes of the refreshes it ran

The database and vault come from MAILGRANT_DATABASE_URL / MAILGRANT_HOME, as for `mailgrant`.
"""

import json
import os
import sys
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import django
import httpx


def setup(issuer: str, login: str, password: str, secret: str = "") -> dict:
    from mailgrant.oauth.models import OAuthClient
    from mailgrant.oauth.selectors import oauth_client_redirect_uri
    from mailgrant.oauth.services.authorization import authorization_complete, authorization_start
    from mailgrant.oauth.services.clients import oauth_client_save
    from tests.servers.oidc import login_headless

    secret = secret or f"secret-{uuid.uuid4().hex}"
    client = oauth_client_save(
        client=OAuthClient(
            name=f"mp-{uuid.uuid4().hex[:8]}",
            provider="generic",
            issuer=issuer,
            client_id=f"mp-{uuid.uuid4().hex[:12]}",
            scope="openid email offline_access mail",
        ),
        client_secret=secret,
    )
    httpx.post(
        f"{issuer}/__test/clients",
        json={
            "client_id": client.client_id,
            "client_secret": secret,
            "redirect_uris": [oauth_client_redirect_uri(client=client)],
            "grant_types": ["authorization_code", "refresh_token"],
        },
    ).raise_for_status()
    started = authorization_start(client=client, purpose="api")
    redirect = login_headless(started.url, login=login, password=password)
    query = {
        k: v[0]
        for k, v in parse_qs(urlsplit(redirect).query).items()
        if k in {"code", "state", "iss"}
    }
    result = authorization_complete(client_id=client.pk, **query)
    return {
        "name": client.name,
        "grant": result.grant.pk,
        "client_id": client.client_id,
        "client_secret": secret,
        "expires_at": result.grant.tokens().expires_at,
    }


def tokens(grant_id: int, threads: int, start: float) -> list:
    from django.db import connections

    from mailgrant.oauth.models import Grant
    from mailgrant.oauth.services.tokens import access_token_for

    results: list = [None] * threads

    def ask(i: int) -> None:
        try:
            time.sleep(max(0.0, start - time.time()))
            results[i] = access_token_for(grant=Grant(pk=grant_id)).access_token
        except Exception as exc:  # reported to the test, which fails on it
            results[i] = f"ERROR {type(exc).__name__}: {exc}"
        finally:
            connections.close_all()

    workers = [threading.Thread(target=ask, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return results


def grants(issuer: str, login: str, password: str, count: int) -> dict:
    from django.utils import timezone

    from mailgrant.oauth.models import Grant, OAuthClient
    from mailgrant.oauth.services.authorization import authorization_complete, authorization_start
    from mailgrant.oauth.services.grants import grant_create
    from tests.servers.oidc import login_headless

    made = setup(issuer, login, password)
    client = OAuthClient.objects.get(name=made["name"])
    session = httpx.Client(timeout=10)  # the provider's session: one login, then consents
    for _ in range(count - 1):
        grant = grant_create(client=client, account=login)
        started = authorization_start(client=client, purpose="api", grant=grant)
        redirect = login_headless(started.url, login=login, password=password, http=session)
        query = {
            k: v[0]
            for k, v in parse_qs(urlsplit(redirect).query).items()
            if k in {"code", "state", "iss"}
        }
        authorization_complete(client_id=client.pk, **query)
    Grant.objects.filter(client=client).update(next_refresh_at=timezone.now())
    return {**made, "grants": Grant.objects.filter(client=client).count()}


def job(threads: int, start: float) -> list:
    from django.db import connections
    from django.utils import timezone

    from mailgrant.common.jobs import InlineContext
    from mailgrant.oauth.jobs import grants_refresh_due
    from mailgrant.oauth.models import Grant

    outcomes: list = []
    name = f"p{os.getpid()}"

    def run(i: int) -> None:
        try:
            time.sleep(max(0.0, start - time.time()))
            while True:
                # A small pool, as a busy worker's: claims go round the processes.
                ctx = InlineContext(worker=f"{name}-{i}", now=timezone.now(), capacity=2)
                grants_refresh_due(ctx)
                outcomes.extend(str(r) for r in ctx.results)
                if (
                    not ctx.results
                    and not Grant.objects.filter(next_refresh_at__lte=timezone.now()).exists()
                ):
                    return
        finally:
            connections.close_all()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return outcomes


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailgrant.config.settings")
    django.setup()
    command, *args = sys.argv[1:]
    if command == "setup":
        print(json.dumps(setup(*args)))
    elif command == "reveal":
        from mailgrant.oauth.models import Grant

        print(json.dumps(Grant.objects.get(pk=int(args[0])).tokens().to_dict()))
    elif command == "grants":
        print(json.dumps(grants(args[0], args[1], args[2], int(args[3]))))
    elif command == "job":
        print(json.dumps(job(int(args[0]), float(args[1]))))
    else:
        print(json.dumps(tokens(int(args[0]), int(args[1]), float(args[2]))))
