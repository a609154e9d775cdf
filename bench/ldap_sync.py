"""LDAP sync: mailgrant's ldap_directory_sync against a raw ldap3 paged search of the same people.

Starts a throwaway slapd (tests/servers/slapd.py) with N extra people (slapadd), a throwaway
SQLite database (migrated), then times --runs rounds of:

  ldap3      one bind and a paged search of every person with the mapped attributes: the
             least any sync must do, and the baseline
  first      ldap_directory_sync() into an empty database (every user created)
  again      the same sync with nothing changed (every account compared, none written)

Reading it: min / median seconds over the runs, people/s, and "x ldap3" (median sync time /
median ldap3 time): the cost of everything past reading the directory (mapping, comparing,
writing users, accounts and the audit row). The machine is shared: trust the ratios more than
the seconds.

    .venv/bin/python bench/ldap_sync.py [--people 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from tests.servers import slapd as peer

    from mailgrant.directory import ldap
    from mailgrant.directory.models import DirectoryAccount, LdapDirectory
    from mailgrant.directory.selectors import ldap_directory_config
    from mailgrant.directory.services.directories import ldap_directory_save
    from mailgrant.directory.services.sync import ldap_directory_sync

    call_command("migrate", verbosity=0)
    extra = [
        peer.Person(f"user{n:06d}", "Given", f"Surname {n}", f"user{n}@example.test", "pw")
        for n in range(args.people)
    ]
    with peer.SlapdServer(extra_people=extra) as server:
        directory = ldap_directory_save(
            directory=LdapDirectory(
                name="bench",
                server_uri=server.uri,
                security="none",
                bind_dn=peer.BIND_DN,
                base_dn=peer.PEOPLE_DN,
                user_filter=peer.USER_FILTER,
                disabled_filter=peer.DISABLED_FILTER,
            ),
            bind_password=peer.BIND_PASSWORD,
        )
        config = ldap_directory_config(directory=directory)
        attributes = sorted(set(directory.attribute_map.values()))
        total = len(peer.PEOPLE) + args.people

        def raw() -> None:
            assert len(ldap.search_people(config, attributes=attributes)) == total

        def reset() -> None:
            DirectoryAccount.objects.all().delete()
            get_user_model().objects.all().delete()

        def sync(expect_created: int) -> Callable[[], None]:
            def run() -> None:
                result = ldap_directory_sync(directory=directory)
                assert result.ok and result.created == expect_created, result.details

            return run

        times: dict[str, list[float]] = {"ldap3": [], "first": [], "again": []}
        for _ in range(args.runs):
            times["ldap3"].append(timed(raw))
            reset()
            times["first"].append(timed(sync(total)))
            times["again"].append(timed(sync(0)))

    baseline = statistics.median(times["ldap3"])
    print(f"{total} people, {args.runs} runs, load {os.getloadavg()[0]:.2f}")
    print(f"{'':8} {'min s':>8} {'median s':>9} {'people/s':>9} {'x ldap3':>8}")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(
            f"{name:8} {min(runs):8.2f} {median:9.2f} {total / median:9.0f} "
            f"{median / baseline:8.1f}"
        )


if __name__ == "__main__":
    main()
