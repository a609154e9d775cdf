"""Signing in with a directory behind it, against the real slapd: the live look-up single
sign-on makes (linked, refused when disabled, None when unknown, the last sync when the
directory is down) and the login page's directory password backend."""

import logging
import socket

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.test import Client

from mailgrant.common.models import AuditEvent
from mailgrant.directory.backends import DirectoryBackend
from mailgrant.directory.errors import DirectoryUserDisabled
from mailgrant.directory.models import DirectoryAccount, LdapDirectory
from mailgrant.directory.services.login import directory_account_for_login
from mailgrant.directory.services.sync import ldap_directory_sync
from tests.servers import slapd as peer

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
User = get_user_model()
ALICE, BOB, CAROL = peer.PEOPLE
BY_MAIL = {"username": "mail", "email": "mail", "first_name": "givenName", "last_name": "sn"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _take_down(directory: LdapDirectory) -> None:
    LdapDirectory.objects.filter(pk=directory.pk).update(
        server_uri=f"ldap://127.0.0.1:{_closed_port()}"
    )
    directory.refresh_from_db()


# --- single sign-on: directory_account_for_login --------------------------------------------


def test_a_known_person_is_linked_to_their_directory_account(make_directory) -> None:
    directory = make_directory(attribute_map=BY_MAIL)  # the provider's username is the mail
    account = directory_account_for_login(directories=[directory], username=ALICE.mail)
    assert account is not None and account.directory == directory
    assert account.user.username == ALICE.mail and account.user.is_active
    assert (account.user.first_name, account.user.last_name) == ("Alice", "Example")
    assert AuditEvent.objects.filter(action="directory_account.created", actor="sso").count() == 1
    # the same person again: the same account and user, not a new one
    again = directory_account_for_login(directories=[directory], username=ALICE.mail.upper())
    assert again is not None and again.pk == account.pk and User.objects.count() == 1


def test_the_look_up_refreshes_a_synced_account(make_directory, directory_people) -> None:
    directory = make_directory()
    ldap_directory_sync(directory=directory)
    synced = DirectoryAccount.objects.get(username="alice")
    directory_people.modify(ALICE.dn, givenName=["Alicia"])
    account = directory_account_for_login(directories=[directory], username="alice")
    assert account is not None and account.pk == synced.pk
    assert account.user.first_name == "Alicia"
    assert User.objects.get(username="alice").first_name == "Alicia"


def test_a_disabled_person_is_refused(make_directory) -> None:
    directory = make_directory()
    with pytest.raises(DirectoryUserDisabled) as caught:
        directory_account_for_login(directories=[directory], username="carol")
    assert "disabled" in str(caught.value) and "administrator" in str(caught.value)
    assert caught.value.directory == directory.name and caught.value.username == "carol"
    # the refusal is recorded like a sync would: carol's user exists, inactive
    assert not User.objects.get(username="carol").is_active


def test_a_person_disabled_since_the_last_sync_is_refused(make_directory, directory_people) -> None:
    directory = make_directory()
    ldap_directory_sync(directory=directory)
    directory_people.modify(BOB.dn, employeeType=["disabled"])
    with pytest.raises(DirectoryUserDisabled):
        directory_account_for_login(directories=[directory], username="bob")
    assert not User.objects.get(username="bob").is_active


def test_an_unknown_username_gives_none(make_directory) -> None:
    directory = make_directory()
    assert directory_account_for_login(directories=[directory], username="mallory") is None
    assert directory_account_for_login(directories=[directory], username="") is None
    assert directory_account_for_login(directories=[directory], username="*") is None
    assert directory_account_for_login(directories=[], username="alice") is None
    assert not User.objects.exists()


def test_a_disabled_directory_is_not_asked(make_directory) -> None:
    directory = make_directory(status=LdapDirectory.Status.DISABLED)
    assert directory_account_for_login(directories=[directory], username="alice") is None


def test_directories_are_asked_in_order(make_directory) -> None:
    empty = make_directory(name="nobody here", user_filter="(employeeType=contractor)")
    people = make_directory(name="people")
    account = directory_account_for_login(directories=[empty, people], username="bob")
    assert account is not None and account.directory == people


def test_a_person_gone_from_the_directory_is_disabled_at_sign_in(
    make_directory, directory_people
) -> None:
    directory = make_directory()
    ldap_directory_sync(directory=directory)
    directory_people.delete(BOB.dn)
    with pytest.raises(DirectoryUserDisabled):
        directory_account_for_login(directories=[directory], username="bob")
    assert DirectoryAccount.objects.get(username="bob").is_disabled
    assert not User.objects.get(username="bob").is_active


def test_a_username_taken_locally_is_not_linked(make_directory) -> None:
    local = User.objects.create_user("alice", password="local-password")
    directory = make_directory()
    assert directory_account_for_login(directories=[directory], username="alice") is None
    local.refresh_from_db()
    assert local.check_password("local-password")
    assert not DirectoryAccount.objects.exists()


def test_when_the_directory_is_down_the_last_sync_stands_in(make_directory, caplog) -> None:
    directory = make_directory()
    ldap_directory_sync(directory=directory)
    _take_down(directory)
    caplog.set_level(logging.WARNING, logger="mailgrant.sso")
    account = directory_account_for_login(directories=[directory], username="alice")
    assert account is not None and account.username == "alice"
    assert "using the last synced account" in caplog.text
    with pytest.raises(DirectoryUserDisabled):  # a disabled synced account is still refused
        directory_account_for_login(directories=[directory], username="carol")
    assert directory_account_for_login(directories=[directory], username="mallory") is None
    assert peer.BIND_PASSWORD not in caplog.text


# --- the login page: DirectoryBackend ---------------------------------------------------------


@pytest.fixture
def login_directory(make_directory):
    return make_directory(name="staff directory", show_in_login=True)


def test_the_directory_password_signs_a_person_in(login_directory, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    user = authenticate(None, username="alice", password=ALICE.password)
    assert user is not None and user.username == "alice" and user.is_active
    assert user.backend == "mailgrant.directory.backends.DirectoryBackend"
    assert not user.has_usable_password()  # the password stays in the directory
    assert DirectoryAccount.objects.get(user=user).directory == login_directory
    assert AuditEvent.objects.filter(action="directory_account.created", actor="login").exists()
    assert ALICE.password not in caplog.text


def test_a_wrong_or_empty_password_is_refused(login_directory, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    assert authenticate(None, username="alice", password="canary-wrong-password-91") is None
    assert authenticate(None, username="alice", password="") is None
    assert authenticate(None, username="mallory", password="anything") is None
    assert authenticate(None, username="alice", password=BOB.password) is None
    assert not User.objects.exists()
    assert "canary-wrong-password-91" not in caplog.text


def test_a_disabled_person_is_refused_even_with_the_right_password(login_directory) -> None:
    assert authenticate(None, username="carol", password=CAROL.password) is None
    assert not User.objects.get(username="carol").is_active


def test_only_show_in_login_directories_let_people_in(make_directory) -> None:
    make_directory(show_in_login=False)
    assert authenticate(None, username="alice", password=ALICE.password) is None
    make_directory(name="off", show_in_login=True, status=LdapDirectory.Status.DISABLED)
    assert authenticate(None, username="alice", password=ALICE.password) is None


def test_a_local_user_is_never_signed_in_with_a_directory_password(login_directory) -> None:
    local = User.objects.create_user("alice", password="local-password-1")
    assert authenticate(None, username="alice", password=ALICE.password) is None
    assert authenticate(None, username="alice", password="local-password-1") == local


def test_a_session_ends_when_the_directory_disables_the_person(
    login_directory, directory_people
) -> None:
    client = Client()
    assert client.login(username="bob", password=BOB.password)
    bob = User.objects.get(username="bob")
    assert DirectoryBackend().get_user(bob.pk) == bob
    directory_people.modify(BOB.dn, employeeType=["disabled"])
    ldap_directory_sync(directory=login_directory)
    assert DirectoryBackend().get_user(bob.pk) is None


def test_a_directory_that_is_down_refuses_password_sign_ins(login_directory) -> None:
    assert authenticate(None, username="alice", password=ALICE.password) is not None
    _take_down(login_directory)
    assert authenticate(None, username="alice", password=ALICE.password) is None
