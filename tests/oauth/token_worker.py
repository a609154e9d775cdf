"""A separate process for the multi-process refresh tests (run as `python -m`):

    setup ISSUER LOGIN PASSWORD   create a client at the test provider, validate it, print
                                  its name and grant id as JSON
    reveal GRANT_ID               print the grant's current token set as JSON (for canaries)
    tokens GRANT_ID THREADS START ask for an access token from THREADS threads at once at the
                                  epoch time START; print one JSON list of the tokens

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


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailgrant.config.settings")
    django.setup()
    command, *args = sys.argv[1:]
    if command == "setup":
        print(json.dumps(setup(*args)))
    elif command == "reveal":
        from mailgrant.oauth.models import Grant

        print(json.dumps(Grant.objects.get(pk=int(args[0])).tokens().to_dict()))
    else:
        print(json.dumps(tokens(int(args[0]), int(args[1]), float(args[2]))))
