"""The LDAP protocol module against the real slapd: binds (plain, StartTLS, LDAPS, with and
without verification), paged searches, one person, password checks, and clear errors."""

import dataclasses
import socket

import pytest

from mailgrant.directory import ldap
from tests.servers import slapd as peer

pytestmark = pytest.mark.integration

ATTRIBUTES = ["uid", "mail", "givenName", "sn"]


@pytest.fixture
def config(directory_people) -> ldap.DirectoryConfig:
    return ldap.DirectoryConfig(
        server_uri=directory_people.uri,
        base_dn=peer.PEOPLE_DN,
        security="none",
        bind_dn=peer.BIND_DN,
        bind_password=peer.BIND_PASSWORD,
        user_filter=peer.USER_FILTER,
        disabled_filter=peer.DISABLED_FILTER,
        timeout=4.5,  # as the setting gives it: a float
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_search_reads_every_person_and_who_is_disabled(config) -> None:
    people = {e.first("uid"): e for e in ldap.search_people(config, attributes=ATTRIBUTES)}
    assert set(people) == {"alice", "bob", "carol"}
    assert people["alice"].dn == "uid=alice,ou=people,dc=example,dc=test"
    assert people["alice"].first("mail") == "alice@example.test"
    assert people["alice"].first("GIVENNAME") == "Alice"  # attribute names are case-insensitive
    assert [p for p, e in people.items() if e.disabled] == ["carol"]


def test_search_follows_pages(config, directory_people) -> None:
    for n in range(7):
        directory_people.add_person(
            peer.Person(f"extra{n}", "Extra", f"Person {n}", f"extra{n}@example.test", "pw")
        )
    small_pages = dataclasses.replace(config, page_size=2)
    found = ldap.search_people(small_pages, attributes=["uid"])
    assert len(found) == 10 and len({e.dn for e in found}) == 10
    assert ldap.count_people(small_pages) == (10, 1)


def test_find_person_one_none_and_ambiguous(config, directory_people) -> None:
    carol = ldap.find_person(
        config, attribute="mail", value="carol@example.test", attributes=["uid"]
    )
    assert carol is not None and carol.first("uid") == "carol" and carol.disabled
    alice = ldap.find_person(config, attribute="uid", value="ALICE", attributes=["uid"])
    assert alice is not None and not alice.disabled
    assert ldap.find_person(config, attribute="uid", value="nobody", attributes=["uid"]) is None
    # a hostile value is escaped, not read as filter syntax
    assert ldap.find_person(config, attribute="uid", value="*", attributes=["uid"]) is None
    assert ldap.find_person(config, attribute="uid", value="a*)(uid=*", attributes=[]) is None
    directory_people.add_person(peer.Person("alice2", "Alice", "Twin", "alice@example.test", "pw"))
    with pytest.raises(ldap.LdapError) as caught:
        ldap.find_person(config, attribute="mail", value="alice@example.test", attributes=[])
    assert caught.value.kind == "ambiguous"


def test_check_password_right_wrong_and_empty(config) -> None:
    alice = next(p for p in peer.PEOPLE if p.uid == "alice")
    assert ldap.check_password(config, dn=alice.dn, password=alice.password)
    assert not ldap.check_password(config, dn=alice.dn, password="not-her-password")
    # an empty password would be an anonymous bind, which LDAP lets "succeed"
    assert not ldap.check_password(config, dn=alice.dn, password="")


def test_starttls_and_ldaps_verify_against_the_given_ca(config, directory_people) -> None:
    starttls = dataclasses.replace(
        config, security="starttls", ca_certificate=directory_people.ca_pem
    )
    assert ldap.count_people(starttls) == (3, 1)
    ldaps = dataclasses.replace(starttls, server_uri=directory_people.ldaps_uri, security="ldaps")
    assert ldap.count_people(ldaps) == (3, 1)


@pytest.mark.parametrize("security", ["starttls", "ldaps"])
def test_an_untrusted_certificate_is_refused_unless_verify_is_off(
    config, directory_people, security
) -> None:
    uri = directory_people.ldaps_uri if security == "ldaps" else directory_people.uri
    untrusted = dataclasses.replace(config, server_uri=uri, security=security)
    with pytest.raises(ldap.LdapError) as caught:
        ldap.count_people(untrusted)
    assert caught.value.kind == "tls"
    assert "certificate" in caught.value.message and uri in caught.value.message
    assert ldap.count_people(dataclasses.replace(untrusted, verify_ssl=False)) == (3, 1)


def test_errors_are_clear_and_never_carry_the_password(config) -> None:
    cases = {
        "unreachable": dataclasses.replace(config, server_uri=f"ldap://127.0.0.1:{_closed_port()}"),
        "bind": dataclasses.replace(config, bind_password="canary-wrong-bind-password"),
        "base_dn": dataclasses.replace(config, base_dn="ou=nobody,dc=example,dc=test"),
        "filter": dataclasses.replace(config, user_filter="(objectClass=inetOrgPerson"),
        "config": dataclasses.replace(config, server_uri="http://127.0.0.1"),
    }
    messages = {}
    for kind, bad in cases.items():
        with pytest.raises(ldap.LdapError) as caught:
            ldap.search_people(bad, attributes=ATTRIBUTES)
        assert caught.value.kind == kind, caught.value.message
        messages[kind] = caught.value.message
        for text in (str(caught.value), repr(caught.value), repr(bad)):
            assert peer.BIND_PASSWORD not in text
            assert "canary-wrong-bind-password" not in text
    assert "Cannot reach ldap://127.0.0.1:" in messages["unreachable"]
    assert "refused the bind DN or password" in messages["bind"]
    assert "does not exist" in messages["base_dn"]
    assert "not a valid LDAP filter" in messages["filter"]


def test_the_wrong_port_for_the_security_is_an_error_not_a_hang(config, directory_people) -> None:
    tls_port = directory_people.ldaps_uri.rsplit(":", 1)[1]
    plain_to_tls = dataclasses.replace(config, server_uri=f"ldap://127.0.0.1:{tls_port}", timeout=3)
    with pytest.raises(ldap.LdapError) as caught:
        ldap.count_people(plain_to_tls)
    assert caught.value.kind == "unreachable" and "closed the connection" in caught.value.message
    tls_to_plain = dataclasses.replace(
        config,
        server_uri=directory_people.uri.replace("ldap://", "ldaps://"),
        security="ldaps",
        verify_ssl=False,
        timeout=3,
    )
    with pytest.raises(ldap.LdapError) as caught:
        ldap.count_people(tls_to_plain)
    assert caught.value.kind == "tls" and "is it a plain LDAP port?" in caught.value.message


def test_anonymous_and_password_less_binds(config) -> None:
    anonymous = dataclasses.replace(config, bind_dn="", bind_password="")
    with pytest.raises(ldap.LdapError) as caught:  # the test slapd shows anonymous nothing
        ldap.count_people(anonymous)
    assert "an anonymous bind may not see it" in caught.value.message
    with pytest.raises(ldap.LdapError) as caught:
        ldap.count_people(dataclasses.replace(config, bind_password=""))
    assert caught.value.message == "The bind DN needs its password."


def test_checks_without_a_server() -> None:
    assert ldap.normalize_filter("objectClass=person") == "(objectClass=person)"
    assert ldap.filter_error("(&(objectClass=person)(uid=a))") == ""
    assert ldap.filter_error("(userAccountControl:1.2.840.113556.1.4.803:=2)") == ""
    assert ldap.filter_error("(uid=a") and ldap.filter_error("")
    assert ldap.dn_error("dc=example,dc=test") == "" and ldap.dn_error("not a dn")
    assert ldap.server_uri_error("ldap://[::1]:389", "starttls") == ""
    assert (
        ldap.server_uri_error("ldaps://host", "starttls") == "An ldaps:// URI needs security LDAPS."
    )
    assert ldap.server_uri_error("ldap://host", "ldaps")
    assert ldap.server_uri_error("ldap://host:99999", "none")
    assert ldap.server_uri_error("ldap://host/dc=example", "none")
    assert ldap.ca_certificate_error("not a certificate")
    assert ldap.ca_certificate_error("") == ""
