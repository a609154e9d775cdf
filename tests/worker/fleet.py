"""A separate process for the multi-worker tests (run as `python -m tests.worker.fleet`):

    setup IMAP_PORT COUNT ISSUER   COUNT password mailboxes (user w<i>@example.test) and,
                                   when ISSUER is not "-", one OAuth mailbox each for alice
                                   and bob validated at the test provider; prints their users
    report                         prints the stored messages, the claims and the workers
    fetch-soon NAME                "Fetch now" through the worker (mailbox_fetch_soon)

The database and vault come from MAILGRANT_DATABASE_URL / MAILGRANT_HOME, as for `mailgrant`.
"""

import json
import os
import sys

import django

POLL_INTERVAL = 10


def fleet_user(i: int) -> tuple[str, str]:
    return f"w{i:03d}@example.test", f"pw-{i:03d}"


def setup(port: str, count: str, issuer: str) -> dict:
    from mailgrant.mailboxes.models import Mailbox
    from mailgrant.mailboxes.services.mailboxes import mailbox_save
    from mailgrant.oauth.models import Grant
    from tests.servers.oidc import ACCOUNTS

    common = dict(
        protocol="imap",
        direction="incoming",
        host="127.0.0.1",
        port=int(port),
        security="none",
        poll_interval=POLL_INTERVAL,
    )
    users = {}
    for i in range(int(count)):
        user, password = fleet_user(i)
        name = f"box-{i:03d}"
        mailbox_save(
            mailbox=Mailbox(name=name, username=user, auth_method="password", **common),
            password=password,
        )
        users[name] = user
    if issuer != "-":
        from tests.oauth.token_worker import setup as client_setup

        for login in ("alice@example.test", "bob@example.test"):
            made = client_setup(issuer, login, ACCOUNTS[login]["password"])
            grant = Grant.objects.get(pk=made["grant"])
            name = f"oauth-{login.split('@')[0]}"
            mailbox_save(
                mailbox=Mailbox(
                    name=name,
                    username=login,
                    auth_method="oauth2",
                    oauth_client=grant.client,
                    grant=grant,
                    **common,
                )
            )
            users[name] = login
    return users


def report() -> dict:
    from mailgrant.mailboxes.models import Mailbox, Message
    from mailgrant.worker.models import Worker

    return {
        "ids": dict(Mailbox.objects.values_list("name", "pk")),
        "messages": list(Message.objects.values_list("mailbox__name", "message_id")),
        "claims": {
            name: [by, until.timestamp() if until else None]
            for name, by, until in Mailbox.objects.exclude(claimed_by="").values_list(
                "name", "claimed_by", "claimed_until"
            )
        },
        "errors": dict(Mailbox.objects.exclude(last_error="").values_list("name", "last_error")),
        "workers": [
            {
                "name": w.name,
                "pid": w.pid,
                "state": w.state(),
                "concurrency": w.concurrency,
                "peak": w.activity.get("peak", 0),
                "rounds": w.activity.get("counts", {}).get("rounds", 0),
            }
            for w in Worker.objects.all()
        ],
    }


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailgrant.config.settings")
    django.setup()
    command, *args = sys.argv[1:]
    if command == "setup":
        print(json.dumps(setup(*args)))
    elif command == "report":
        print(json.dumps(report()))
    else:
        from mailgrant.mailboxes.models import Mailbox
        from mailgrant.mailboxes.services.mailboxes import mailbox_fetch_soon

        mailbox_fetch_soon(mailbox=Mailbox.objects.get(name=args[0]))
        print("{}")
