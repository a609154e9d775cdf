"""Syncing a directory from the real slapd: people imported with their mapped fields, changes
and departures followed, conflicts reported, failures clear and harmless, one audit row each."""

import socket

import pytest
from django.contrib.auth import get_user_model

from mailgrant.common.errors import Invalid
from mailgrant.common.models import AuditEvent
from mailgrant.directory.models import DirectoryAccount, LdapDirectory
from mailgrant.directory.services.directories import ldap_directory_save, ldap_directory_test
from mailgrant.directory.services.sync import ldap_directory_sync
from tests.servers import slapd as peer

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
User = get_user_model()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _users() -> dict[str, tuple]:
    return {
        u.username: (u.email, u.first_name, u.last_name, u.is_active, u.has_usable_password())
        for u in User.objects.order_by("username")
    }


def test_first_sync_imports_the_people_with_their_mapped_fields(make_directory) -> None:
    directory = make_directory()
    result = ldap_directory_sync(directory=directory)
    assert result.ok, result.error
    assert result.summary == "3 created, 0 updated, 0 disabled, 0 conflicts"
    assert _users() == {
        "alice": ("alice@example.test", "Alice", "Example", True, False),
        "bob": ("bob@example.test", "Bob", "Example", True, False),
        "carol": ("carol@example.test", "Carol", "Example", False, False),  # disabled
    }
    accounts = {a.username: a for a in DirectoryAccount.objects.filter(directory=directory)}
    assert accounts["alice"].dn == "uid=alice,ou=people,dc=example,dc=test"
    assert [u for u, a in accounts.items() if a.is_disabled] == ["carol"]
    directory.refresh_from_db()
    assert directory.last_sync_at is not None and directory.last_error == ""
    assert directory.last_sync_summary == result.summary
    event = AuditEvent.objects.get(action="ldap_directory.synced")
    assert event.outcome == "ok" and event.message == result.summary
    assert event.target_repr == directory.name and event.actor == "system"

    again = ldap_directory_sync(directory=directory)  # nothing changed in the directory
    assert again.summary == "0 created, 0 updated, 0 disabled, 0 conflicts"
    assert again.unchanged == 3
    assert AuditEvent.objects.filter(action="ldap_directory.synced").count() == 2


def test_a_second_sync_updates_changed_people_and_disables_removed_ones(
    make_directory, directory_people
) -> None:
    directory = make_directory()
    ldap_directory_sync(directory=directory)
    alice, bob = peer.PEOPLE[0], peer.PEOPLE[1]
    directory_people.modify(alice.dn, mail=["alice.new@example.test"], sn=["Renamed"])
    directory_people.delete(bob.dn)
    directory_people.add_person(
        peer.Person("dave", "Dave", "Example", "dave@example.test", "dave-password")
    )
    result = ldap_directory_sync(directory=directory)
    assert result.summary == "1 created, 1 updated, 1 disabled, 0 conflicts"
    users = _users()
    assert users["alice"][:3] == ("alice.new@example.test", "Alice", "Renamed")
    assert users["bob"][3] is False  # kept, inactive
    assert users["dave"][3] is True
    assert DirectoryAccount.objects.get(username="bob").is_disabled

    # back in the directory: active again
    directory_people.add_person(bob)
    result = ldap_directory_sync(directory=directory)
    assert result.summary == "0 created, 1 updated, 0 disabled, 0 conflicts"
    assert User.objects.get(username="bob").is_active
    assert not DirectoryAccount.objects.get(username="bob").is_disabled


def test_a_person_marked_disabled_later_is_disabled(make_directory, directory_people) -> None:
    directory = make_directory()
    ldap_directory_sync(directory=directory)
    directory_people.modify(peer.PEOPLE[0].dn, employeeType=["disabled"])
    result = ldap_directory_sync(directory=directory)
    assert result.summary == "0 created, 0 updated, 1 disabled, 0 conflicts"
    assert not User.objects.get(username="alice").is_active


def test_a_username_taken_by_another_user_is_a_conflict_not_a_takeover(make_directory) -> None:
    local = User.objects.create_user("Alice", email="someone.else@example.test", password="x-pw")
    directory = make_directory()
    result = ldap_directory_sync(directory=directory)
    assert result.conflicts == ["alice"]
    assert result.summary == "2 created, 0 updated, 0 disabled, 1 conflicts"
    local.refresh_from_db()
    assert local.email == "someone.else@example.test" and local.check_password("x-pw")
    assert not DirectoryAccount.objects.filter(user=local).exists()
    event = AuditEvent.objects.get(action="ldap_directory.synced")
    assert event.message.endswith("; conflicts: alice")

    # nor does a second directory take over the first one's users
    other = make_directory(name="second copy")
    second = ldap_directory_sync(directory=other)
    assert sorted(second.conflicts) == ["alice", "bob", "carol"]
    assert DirectoryAccount.objects.filter(directory=other).count() == 0


def test_the_attribute_map_decides_the_fields(make_directory, directory_people) -> None:
    directory_people.modify(peer.PEOPLE[0].dn, mail=["first@example.test", "second@example.test"])
    directory = make_directory(
        attribute_map={"username": "mail", "first_name": "cn"}  # no email, no last name
    )
    ldap_directory_sync(directory=directory)
    alice = User.objects.get(username="first@example.test")  # multi-valued: the first
    assert (alice.first_name, alice.email, alice.last_name) == ("Alice Example", "", "")
    assert User.objects.filter(username="bob@example.test").exists()


def test_people_without_a_username_are_skipped(make_directory, directory_people) -> None:
    directory = make_directory(attribute_map={"username": "employeeNumber"})
    directory_people.modify(peer.PEOPLE[0].dn, employeeNumber=["1001"])
    result = ldap_directory_sync(directory=directory)
    assert result.summary == "1 created, 0 updated, 0 disabled, 0 conflicts, 2 skipped"
    assert list(User.objects.values_list("username", flat=True)) == ["1001"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"server_uri": "ldap://127.0.0.1:{closed}"}, "Cannot reach ldap://127.0.0.1:"),
        ({"bind_password": "canary-wrong-bind-password"}, "refused the bind DN or password"),
        ({"base_dn": "ou=nobody,dc=example,dc=test"}, "does not exist on the server"),
        ({"user_filter": "(objectClass=inetOrgPerson"}, "is not a valid LDAP filter"),
    ],
    ids=["server down", "wrong bind password", "bad base DN", "bad filter"],
)
def test_a_failed_sync_is_a_clear_error_and_changes_no_user(
    make_directory, directory_people, change, expected
) -> None:
    directory = make_directory()
    ldap_directory_sync(directory=directory)
    directory_people.delete(peer.PEOPLE[0].dn)  # a good sync would disable alice
    before = _users()
    for field, value in change.items():
        if field == "bind_password":
            directory.bind_password = value
            directory.save()
        else:
            # as a bad value stored earlier (the form and the service would refuse the filter)
            LdapDirectory.objects.filter(pk=directory.pk).update(
                **{field: value.format(closed=_closed_port())}
            )
    directory.refresh_from_db()
    result = ldap_directory_sync(directory=directory)
    assert not result.ok and expected in result.error
    assert _users() == before
    directory.refresh_from_db()
    assert expected in directory.last_error and directory.last_sync_summary == "failed"
    event = AuditEvent.objects.filter(action="ldap_directory.sync_failed").get()
    assert event.outcome == "failed" and expected in event.message
    for text in (result.error, directory.last_error, event.message):
        assert peer.BIND_PASSWORD not in text and "canary-wrong-bind-password" not in text

    # fixed: the next sync works and clears the error
    ldap_directory_save(
        directory=_fixed(directory, directory_people), bind_password=peer.BIND_PASSWORD
    )
    result = ldap_directory_sync(directory=directory)
    assert result.ok and result.disabled == 1
    directory.refresh_from_db()
    assert directory.last_error == ""


def _fixed(directory: LdapDirectory, server) -> LdapDirectory:
    directory.server_uri = server.uri
    directory.base_dn = peer.PEOPLE_DN
    directory.user_filter = peer.USER_FILTER
    return directory


def test_a_disabled_directory_is_not_synced(make_directory) -> None:
    directory = make_directory(status=LdapDirectory.Status.DISABLED)
    result = ldap_directory_sync(directory=directory)
    assert not result.ok and "is disabled" in result.error
    assert not User.objects.exists()


def test_test_connection_counts_without_importing(make_directory, directory_people) -> None:
    directory = make_directory()
    result = ldap_directory_test(directory=directory)
    assert result.ok and (result.people, result.disabled) == (3, 1)
    assert "3 people match the user filter, 1 of them disabled" in result.message
    assert not User.objects.exists()
    directory.bind_password = "canary-wrong-bind-password"
    directory.save()
    refused = ldap_directory_test(directory=directory)
    assert not refused.ok and "refused the bind DN or password" in refused.message
    assert "canary-wrong-bind-password" not in refused.message


def test_tls_settings_reach_the_server(make_directory, directory_people) -> None:
    ldaps = make_directory(
        server_uri=directory_people.ldaps_uri,
        security="ldaps",
        ca_certificate=directory_people.ca_pem,
    )
    assert ldap_directory_sync(directory=ldaps).created == 3
    untrusted = make_directory(name="untrusted", security="starttls")
    result = ldap_directory_sync(directory=untrusted)
    assert not result.ok and "certificate" in result.error


@pytest.mark.parametrize(
    ("field", "value", "error_field"),
    [
        ("server_uri", "http://ldap.example.test", "server_uri"),
        ("server_uri", "ldaps://ldap.example.test", "server_uri"),  # with security none
        ("base_dn", "not a dn", "base_dn"),
        ("user_filter", "(uid=a", "user_filter"),
        ("disabled_filter", "(employeeType=disabled", "disabled_filter"),
        ("attribute_map", {"email": "mail"}, "attribute_map"),
        ("attribute_map", {"username": "uid", "password": "userPassword"}, "attribute_map"),
        ("attribute_map", {"username": "uid)(x"}, "attribute_map"),
        ("attribute_map", ["uid"], "attribute_map"),
        ("ca_certificate", "-----BEGIN CERTIFICATE-----\nnope\n", "ca_certificate"),
    ],
)
def test_bad_settings_are_refused_before_saving(field, value, error_field, db) -> None:
    directory = LdapDirectory(
        name="bad", server_uri="ldap://127.0.0.1", security="none", base_dn="dc=example,dc=test"
    )
    setattr(directory, field, value)
    with pytest.raises(Invalid) as caught:
        ldap_directory_save(directory=directory)
    assert error_field in caught.value.fields
    assert not LdapDirectory.objects.exists()


def test_a_bind_dn_needs_a_password_and_filters_get_their_parentheses(db) -> None:
    directory = LdapDirectory(
        name="d",
        server_uri="ldap://127.0.0.1",
        security="none",
        base_dn="dc=example,dc=test",
        bind_dn=peer.BIND_DN,
        user_filter="objectClass=person",
    )
    with pytest.raises(Invalid) as caught:
        ldap_directory_save(directory=directory)
    assert "bind_password" in caught.value.fields
    ldap_directory_save(directory=directory, bind_password="a-password-here")
    directory.refresh_from_db()
    assert directory.user_filter == "(objectClass=person)"
    assert (
        directory.bind_password is not None
        and directory.bind_password.reveal() == "a-password-here"
    )


def test_a_search_cut_short_by_a_size_limit_fails_and_disables_no_one(
    make_directory, directory_people
) -> None:
    limited = make_directory(
        name="limited", bind_dn=peer.LIMITED_BIND_DN, bind_password=peer.LIMITED_BIND_PASSWORD
    )
    assert ldap_directory_sync(directory=limited).created == 3
    for n in range(peer.SIZE_LIMIT):
        directory_people.add_person(
            peer.Person(f"extra{n}", "Extra", f"Person {n}", f"extra{n}@example.test", "pw")
        )
    result = ldap_directory_sync(directory=limited)
    assert not result.ok and "sizeLimitExceeded" in result.error
    assert "size=unlimited" in result.error
    assert User.objects.filter(is_active=True).count() == 2  # alice and bob, as before
    # the reader the server lets read everyone gets them all, page by page
    everyone = make_directory(name="everyone")
    assert ldap_directory_sync(directory=everyone).conflicts == ["alice", "bob", "carol"]
    assert DirectoryAccount.objects.filter(directory=everyone).count() == peer.SIZE_LIMIT
