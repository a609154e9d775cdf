"""LDAP directories in the Django admin: the form with its write-only bind password, the list,
the Test connection and Sync now buttons (POST with CSRF), the read-only imported accounts."""

import json
import logging
import re

import pytest
from django.test import Client
from django.urls import reverse

from mailgrant.common.models import AuditEvent
from mailgrant.directory.models import DirectoryAccount, LdapDirectory
from tests.servers import slapd as peer

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _form(server, **overrides):
    data = {
        "name": "Staff directory",
        "status": "enabled",
        "server_uri": server.uri,
        "security": "none",
        "verify_ssl": "on",
        "ca_certificate": "",
        "bind_dn": peer.BIND_DN,
        "bind_password": peer.BIND_PASSWORD,
        "base_dn": peer.PEOPLE_DN,
        "user_filter": peer.USER_FILTER,
        "disabled_filter": peer.DISABLED_FILTER,
        "attribute_map": json.dumps(
            {"username": "uid", "email": "mail", "first_name": "givenName", "last_name": "sn"}
        ),
        "sync_interval": "60",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_every_field_on_the_form_and_the_password_never_rendered(admin_client, directory_people):
    html = admin_client.get(reverse("admin:directory_ldapdirectory_add")).content.decode()
    for field in (
        "name", "status", "show_in_login", "server_uri", "security", "verify_ssl",
        "ca_certificate", "bind_dn", "bind_password", "base_dn", "user_filter",
        "disabled_filter", "attribute_map", "sync_interval",
    ):  # fmt: skip
        assert f'name="{field}"' in html, field
    assert "Sync now" not in html  # the buttons come once it is saved

    response = admin_client.post(
        reverse("admin:directory_ldapdirectory_add"), _form(directory_people), follow=True
    )
    assert response.status_code == 200
    directory = LdapDirectory.objects.get()
    assert directory.bind_password.reveal() == peer.BIND_PASSWORD
    html = admin_client.get(
        reverse("admin:directory_ldapdirectory_change", args=[directory.pk])
    ).content.decode()
    assert peer.BIND_PASSWORD not in html
    password_input = re.search(r'<input[^>]*name="bind_password"[^>]*>', html).group(0)
    assert "value=" not in password_input
    assert "A password is stored" in html
    assert ">Test connection</button>" in html and ">Sync now</button>" in html
    assert "csrfmiddlewaretoken" in html
    event = AuditEvent.objects.get(action="ldap_directory.created")
    assert peer.BIND_PASSWORD not in event.message


def test_an_empty_password_keeps_it_and_a_new_one_replaces_it(admin_client, directory_people):
    admin_client.post(reverse("admin:directory_ldapdirectory_add"), _form(directory_people))
    directory = LdapDirectory.objects.get()
    url = reverse("admin:directory_ldapdirectory_change", args=[directory.pk])
    admin_client.post(url, _form(directory_people, bind_password="", name="Renamed"))
    directory.refresh_from_db()
    assert directory.name == "Renamed" and directory.bind_password.reveal() == peer.BIND_PASSWORD
    admin_client.post(url, _form(directory_people, bind_password="another-bind-pw", name="Renamed"))
    directory.refresh_from_db()
    assert directory.bind_password.reveal() == "another-bind-pw"
    assert AuditEvent.objects.filter(message="bind password replaced").count() == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("server_uri", "ldap.example.test", "Use ldap://host[:port]"),
        ("base_dn", "not a dn", "is not a valid DN"),
        ("user_filter", "(uid=a", "is not a valid LDAP filter"),
        ("attribute_map", '{"email": "mail"}', "Map username to an attribute"),
        ("attribute_map", "{not json", "Enter a valid JSON"),
        ("bind_password", "", "A bind DN needs its password"),
        ("name", "", "This field is required"),
    ],
)
def test_bad_input_is_a_form_error_and_saves_nothing(
    admin_client, directory_people, field, value, message
):
    response = admin_client.post(
        reverse("admin:directory_ldapdirectory_add"), _form(directory_people, **{field: value})
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not LdapDirectory.objects.exists()
    assert peer.BIND_PASSWORD not in response.content.decode()


def test_test_connection_and_sync_now_buttons(admin_client, make_directory, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    directory = make_directory(name="Staff directory")
    change = reverse("admin:directory_ldapdirectory_change", args=[directory.pk])
    test = reverse("admin:directory_ldapdirectory_test", args=[directory.pk])
    sync = reverse("admin:directory_ldapdirectory_sync", args=[directory.pk])
    assert admin_client.get(test).status_code == 405  # buttons POST only
    assert admin_client.get(sync).status_code == 405

    response = admin_client.post(test, follow=True)
    assert response.redirect_chain[-1][0] == change
    assert any(
        "3 people match the user filter, 1 of them disabled" in m for m in _messages(response)
    )
    assert not DirectoryAccount.objects.exists()

    response = admin_client.post(sync, follow=True)
    assert "Synced: 3 created, 0 updated, 0 disabled, 0 conflicts." in _messages(response)
    assert DirectoryAccount.objects.count() == 3
    html = response.content.decode()
    assert "Recent syncs" in html and "user:admin" in html  # the audit rows, on the page

    listing = admin_client.get(reverse("admin:directory_ldapdirectory_changelist")).content.decode()
    for shown in ("Staff directory", directory.server_uri, "3 created, 0 updated", "Enabled"):
        assert shown in listing
    everything = html + listing + caplog.text
    everything += "".join(e.message for e in AuditEvent.objects.all())
    assert peer.BIND_PASSWORD not in everything


def test_failures_are_error_messages(admin_client, make_directory) -> None:
    directory = make_directory(name="Broken")
    directory.bind_password = "canary-wrong-bind-password"
    directory.save()
    test = admin_client.post(
        reverse("admin:directory_ldapdirectory_test", args=[directory.pk]), follow=True
    )
    assert any(m.startswith("Test failed:") and "refused" in m for m in _messages(test))
    sync = admin_client.post(
        reverse("admin:directory_ldapdirectory_sync", args=[directory.pk]), follow=True
    )
    (message,) = _messages(sync)
    assert message.startswith("Sync failed:") and "refused the bind DN or password" in message
    listing = admin_client.get(reverse("admin:directory_ldapdirectory_changelist")).content.decode()
    assert "refused the bind DN or password" in listing and "failed" in listing
    for text in (sync.content.decode(), listing):
        assert "canary-wrong-bind-password" not in text


def test_the_buttons_need_the_csrf_token_and_the_change_permission(
    admin_user, make_directory, django_user_model
) -> None:
    directory = make_directory()
    sync = reverse("admin:directory_ldapdirectory_sync", args=[directory.pk])
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post(sync).status_code == 403
    assert not DirectoryAccount.objects.exists()
    viewer = django_user_model.objects.create_user("viewer", password="viewer-pw", is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_ldapdirectory"))
    client = Client()
    client.force_login(viewer)
    assert client.post(sync).status_code == 403
    assert not DirectoryAccount.objects.exists()


def test_imported_accounts_are_read_only(admin_client, make_directory) -> None:
    from mailgrant.directory.services.sync import ldap_directory_sync

    ldap_directory_sync(directory=make_directory())
    listing = admin_client.get(reverse("admin:directory_directoryaccount_changelist"))
    html = listing.content.decode()
    assert "uid=carol,ou=people,dc=example,dc=test" in html
    assert admin_client.get(reverse("admin:directory_directoryaccount_add")).status_code == 403
    account = DirectoryAccount.objects.get(username="alice")
    page = admin_client.get(reverse("admin:directory_directoryaccount_change", args=[account.pk]))
    assert page.status_code == 200 and 'name="username"' not in page.content.decode()
    assert (
        admin_client.post(
            reverse("admin:directory_directoryaccount_delete", args=[account.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert DirectoryAccount.objects.count() == 3


def test_deleting_a_directory_keeps_its_users(admin_client, make_directory) -> None:
    from django.contrib.auth import get_user_model

    from mailgrant.directory.services.sync import ldap_directory_sync

    directory = make_directory()
    ldap_directory_sync(directory=directory)
    admin_client.post(
        reverse("admin:directory_ldapdirectory_delete", args=[directory.pk]), {"post": "yes"}
    )
    assert not LdapDirectory.objects.exists() and not DirectoryAccount.objects.exists()
    assert get_user_model().objects.filter(username="alice").exists()
    assert AuditEvent.objects.filter(action="ldap_directory.deleted").count() == 1
