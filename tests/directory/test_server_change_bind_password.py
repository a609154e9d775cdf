"""An LDAP directory's bind password does not follow a change of server by itself: a new
server URI (or security, CA certificate, verification switched off) without the password
again is refused, changing nothing, through the service, the admin and the command line. The
real slapd is the saved server; the new one is a listener on a real socket."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from mailgrant.common.errors import Invalid
from mailgrant.directory.models import LdapDirectory
from mailgrant.directory.services.directories import ldap_directory_save, ldap_directory_test
from tests.servers import slapd as peer
from tests.servers.listener import Listener

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _still_at_slapd(directory: LdapDirectory, slapd_uri: str) -> None:
    saved = LdapDirectory.objects.get(pk=directory.pk)
    assert saved.server_uri == slapd_uri
    assert saved.bind_password.reveal() == peer.BIND_PASSWORD
    assert ldap_directory_test(directory=saved).ok


def test_service_refuses_a_new_uri_without_the_password(make_directory, directory_people) -> None:
    directory = make_directory()
    with Listener(hang_up=True) as listener:
        directory.server_uri = f"ldap://127.0.0.1:{listener.port}"
        with pytest.raises(Invalid) as refused:
            ldap_directory_save(directory=directory)
        assert "bind_password" in refused.value.fields
        _still_at_slapd(directory, directory_people.uri)
        assert listener.connections == 0 and not listener.saw(peer.BIND_PASSWORD)


@pytest.mark.parametrize(
    "change",
    [{"security": "starttls"}, {"verify_ssl": False}],
)
def test_other_changes_of_server_need_the_password_too(make_directory, change) -> None:
    directory = make_directory()
    for name, value in change.items():
        setattr(directory, name, value)
    with pytest.raises(Invalid) as refused:
        ldap_directory_save(directory=directory)
    assert set(refused.value.fields) == {"bind_password"}


def test_with_the_password_given_again_it_goes_there(make_directory) -> None:
    directory = make_directory()
    with Listener(hang_up=True) as listener:
        directory.server_uri = f"ldap://127.0.0.1:{listener.port}"
        ldap_directory_save(directory=directory, bind_password="typed-again-for-the-new-one")
        assert not ldap_directory_test(directory=directory).ok
        assert listener.saw("typed-again-for-the-new-one")
        assert not listener.saw(peer.BIND_PASSWORD)


def test_the_cli_refuses_and_says_why(make_directory, directory_people, capsys) -> None:
    directory = make_directory()
    with pytest.raises(SystemExit):
        call_command("ldap", "update", "--help")
    assert "needs the bind password given again" in " ".join(capsys.readouterr().out.split())
    with Listener(hang_up=True) as listener:
        uri = f"ldap://127.0.0.1:{listener.port}"
        with pytest.raises(CommandError, match="bind password again"):
            call_command(
                "ldap", "update", directory.name, "--server-uri", uri, stdout=io.StringIO()
            )
        _still_at_slapd(directory, directory_people.uri)
        assert not listener.saw(peer.BIND_PASSWORD)


def test_the_admin_form_refuses_and_says_why(admin_client, make_directory, directory_people):
    directory = make_directory()
    url = reverse("admin:directory_ldapdirectory_change", args=[directory.pk])
    assert "needs it typed again" in admin_client.get(url).content.decode()
    with Listener(hang_up=True) as listener:
        form = {
            "name": directory.name,
            "status": "enabled",
            "server_uri": f"ldap://127.0.0.1:{listener.port}",
            "security": "none",
            "verify_ssl": "on",
            "ca_certificate": "",
            "bind_dn": peer.BIND_DN,
            "bind_password": "",
            "base_dn": peer.PEOPLE_DN,
            "user_filter": peer.USER_FILTER,
            "disabled_filter": peer.DISABLED_FILTER,
            "attribute_map": json.dumps(directory.attribute_map),
            "sync_interval": "60",
        }
        answer = admin_client.post(url, form)
        assert answer.status_code == 200
        assert "enter the bind password again" in answer.content.decode()
        _still_at_slapd(directory, directory_people.uri)
        assert not listener.saw(peer.BIND_PASSWORD)
