"""The original token set (as first obtained at Validate) is kept without its refresh token:
a second copy of a credential that may still be live is no record worth keeping."""

from importlib import import_module

import pytest
from django.apps import apps as django_apps

from mailgrant.oauth.models import Grant

pytestmark = pytest.mark.django_db


@pytest.mark.integration
def test_validate_keeps_the_original_without_its_refresh_token(oidc_client, validate_headless):
    grant = validate_headless(oidc_client()).grant
    grant = Grant.objects.get(pk=grant.pk)
    current = grant.tokens()
    assert current is not None and current.refresh_token  # the live one is kept, of course
    original = grant.original_token_set.reveal_json()
    assert original["access_token"] == current.access_token
    assert original["refresh_token"] is None
    assert current.refresh_token not in str(original)


def test_the_migration_strips_the_refresh_token_of_existing_rows(make_client, make_grant):
    grant = make_grant(make_client(), refresh_token="rt-canary-original-7f3a")
    assert grant.original_token_set  # as an older mailgrant stored it: with the refresh token
    stored = Grant.objects.get(pk=grant.pk).original_token_set.reveal_json()
    assert stored["refresh_token"] == "rt-canary-original-7f3a"
    migration = import_module("mailgrant.oauth.migrations.0011_original_token_set_stripped")
    migration.strip_refresh_tokens(django_apps, None)
    after = Grant.objects.get(pk=grant.pk)
    assert after.original_token_set.reveal_json()["refresh_token"] is None
    assert after.original_token_set.reveal_json()["access_token"] == "at-initial"
    assert after.tokens().refresh_token == "rt-canary-original-7f3a"  # the current set untouched
