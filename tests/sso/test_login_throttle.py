"""Password guessing on the login pages is throttled (django-axes): after N failures from one
IP, or against one username, even the right password is refused with a 429 page until the
lock-out passes; a successful sign-in clears its own username's failures. For a local user
on the admin's login page and a directory person (the real slapd) on /accounts/login/."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from tests.servers.slapd import PEOPLE

pytestmark = pytest.mark.django_db

User = get_user_model()
LIMIT = 3
WRONG = "canary-wrong-password-4b1e"
ADMIN_LOGIN = "/admin/login/"
ACCOUNTS_LOGIN = "/accounts/login/"
ALICE = next(p for p in PEOPLE if p.uid == "alice")


@pytest.fixture(autouse=True)
def _limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT


@pytest.fixture
def local_admin():
    return User.objects.create_superuser("root", "root@example.test", "root-password-1")


def _try(path: str, username: str, password: str, ip: str = "192.0.2.10"):
    browser = Client(REMOTE_ADDR=ip)
    response = browser.post(path, {"username": username, "password": password})
    return response, browser


def _signed_in(browser: Client) -> bool:
    return "_auth_user_id" in browser.session


def _locked(response) -> bool:
    return response.status_code == 429 and "Too many failed sign-ins" in response.content.decode()


def _lockout_passes(settings) -> None:
    """As if the lock-out time had gone by (the failures are that old)."""
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )


def test_a_local_user_is_locked_after_failures_until_the_window_passes(
    local_admin, settings, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(LIMIT - 1):
        response, _ = _try(ADMIN_LOGIN, "root", WRONG)
        assert response.status_code == 200  # the form again, with its error
    response, _ = _try(ADMIN_LOGIN, "root", WRONG)
    assert _locked(response)  # the try that reaches the limit is told so
    response, browser = _try(ADMIN_LOGIN, "root", "root-password-1")
    assert _locked(response) and not _signed_in(browser)
    _lockout_passes(settings)
    response, browser = _try(ADMIN_LOGIN, "root", "root-password-1")
    assert response.status_code == 302 and _signed_in(browser)
    # The guessed password is kept nowhere.
    assert WRONG not in caplog.text
    assert not any(WRONG in (a.post_data + a.get_data) for a in AccessAttempt.objects.all())


def test_per_username_from_changing_addresses(local_admin) -> None:
    for n in range(LIMIT):
        _try(ADMIN_LOGIN, "root" if n % 2 else " ROOT", WRONG, ip=f"192.0.2.{20 + n}")
    response, browser = _try(ADMIN_LOGIN, "root", "root-password-1", ip="198.51.100.7")
    assert _locked(response) and not _signed_in(browser)


def test_per_address_across_usernames(local_admin) -> None:
    for n in range(LIMIT):
        _try(ACCOUNTS_LOGIN, f"guess{n}", WRONG, ip="203.0.113.5")
    response, browser = _try(ACCOUNTS_LOGIN, "root", "root-password-1", ip="203.0.113.5")
    assert _locked(response) and not _signed_in(browser)
    # The same person from elsewhere is not held up by that address's guesses.
    response, browser = _try(ACCOUNTS_LOGIN, "root", "root-password-1", ip="203.0.113.6")
    assert response.status_code == 302 and _signed_in(browser)


def test_a_successful_sign_in_clears_only_its_own_failures(local_admin) -> None:
    User.objects.create_user("guesser", password="guesser-password-1")
    for _ in range(LIMIT - 1):
        _try(ADMIN_LOGIN, "root", WRONG, ip="192.0.2.50")
    response, browser = _try(ACCOUNTS_LOGIN, "root", "root-password-1", ip="192.0.2.51")
    assert response.status_code == 302 and _signed_in(browser)
    assert not AccessAttempt.objects.filter(username="root").exists()
    for _ in range(LIMIT - 1):  # as many again: not locked, the count began anew
        _try(ADMIN_LOGIN, "root", WRONG, ip="192.0.2.50")
    # A guesser signing in with an account of their own does not clear their count on root.
    response, _ = _try(ACCOUNTS_LOGIN, "guesser", "guesser-password-1", ip="192.0.2.50")
    assert response.status_code == 302
    _try(ADMIN_LOGIN, "root", WRONG, ip="192.0.2.52")
    response, browser = _try(ADMIN_LOGIN, "root", "root-password-1", ip="192.0.2.53")
    assert _locked(response) and not _signed_in(browser)


@pytest.mark.integration
def test_a_directory_person_is_locked_too(make_directory, settings) -> None:
    make_directory(name="staff directory", show_in_login=True)
    for _ in range(LIMIT - 1):
        response, _ = _try(ACCOUNTS_LOGIN, "alice", WRONG)
        assert response.status_code == 200
    assert _locked(_try(ACCOUNTS_LOGIN, "alice", WRONG)[0])
    response, browser = _try(ACCOUNTS_LOGIN, "alice", ALICE.password)
    assert _locked(response) and not _signed_in(browser)
    assert not User.objects.filter(username="alice").exists()  # no bind, nothing provisioned
    _lockout_passes(settings)
    response, browser = _try(ACCOUNTS_LOGIN, "alice", ALICE.password)
    assert response.status_code == 302 and _signed_in(browser)
