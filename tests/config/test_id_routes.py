"""Every HTML route that takes a database id answers an id past 64 bits (or 0) with a 404, never
a 500. The routes are found by walking the URL resolver, so a new one is covered as it lands."""

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.admin.sites import site
from django.contrib.auth import get_user_model
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve

from mailgrant.common.converters import IdConverter

pytestmark = pytest.mark.django_db

HOSTILE_IDS = ["99999999999999999999", str(2**63), "0"]
_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>\w+)>")


def _routes(resolver: URLResolver, prefix: str = "") -> Iterator[tuple[str, URLPattern, Any]]:
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _routes(entry, route)
        else:
            yield route, entry, entry.pattern.converters


def _id_routes() -> list[tuple[str, str | None]]:
    found = []
    for route, entry, converters in _routes(get_resolver()):
        if route.startswith("api/v1/"):
            continue  # the API bounds its ids itself (its own tests)
        params = dict((m["name"], m["converter"]) for m in _PARAM.finditer(route))
        ids = [name for name in params if name == "object_id" or name.endswith("_id")]
        if not ids:
            continue
        if getattr(entry.callback, "__module__", "").startswith("django."):
            # Django's own admin views take any primary key text and answer an unknown one
            # themselves (checked below).
            continue
        assert all(isinstance(converters.get(name), IdConverter) for name in ids), (
            f"{route} ({entry.name}) takes an id without the bounded <id:...> converter"
        )
        found.append((route, entry.name))
    return found


def test_the_walk_finds_the_routes_that_take_ids() -> None:
    names = {name for _, name in _id_routes()}
    assert {
        "callback",
        "start",
        "oauth_oauthclient_validate",
        "mailboxes_mailbox_test",
        "mailboxes_mailbox_fetch",
        "mailboxes_mailbox_authorize",
        "directory_ldapdirectory_test",
        "directory_ldapdirectory_sync",
    } <= names


def _url(route: str, hostile: str) -> str:
    return "/" + _PARAM.sub(hostile, route).lstrip("^").rstrip("$") + "?state=x"


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "superuser"])
@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_an_id_out_of_range_is_not_found(client: Any, signed_in: bool, hostile: str) -> None:
    if signed_in:
        client.force_login(get_user_model().objects.create_superuser("root", "r@x.test", "pw"))
    client.raise_request_exception = False
    routes = _id_routes()
    assert routes
    for route, name in routes:
        url = _url(route, hostile)
        try:
            match = resolve(url.partition("?")[0])
        except Resolver404:
            pass
        else:  # under /admin/ Django's catch-all takes it: its "no such object" answer
            assert match.url_name != name and match.func.__module__.startswith("django."), url
        for method in (client.get, client.post):
            answer = method(url)
            expected = {302, 404} if route.startswith("admin/") else {404}
            assert answer.status_code in expected, (name, url, method.__name__, answer)


def test_django_admin_views_with_a_huge_id_are_no_500(client: Any) -> None:
    client.force_login(get_user_model().objects.create_superuser("root", "r@x.test", "pw"))
    client.raise_request_exception = False
    for model in site._registry:
        opts = model._meta
        for view in ("change", "delete", "history"):
            url = f"/admin/{opts.app_label}/{opts.model_name}/{HOSTILE_IDS[0]}/{view}/"
            assert client.get(url).status_code in {302, 403, 404}, url
    assert client.get(f"/admin/r/1/{HOSTILE_IDS[0]}/").status_code == 404


def test_a_valid_id_still_reverses_and_resolves() -> None:
    from django.urls import NoReverseMatch, resolve, reverse

    url = reverse("oauth:callback", kwargs={"client_id": 2**63 - 1})
    assert resolve(url).kwargs == {"client_id": 2**63 - 1}
    with pytest.raises(NoReverseMatch):
        reverse("sso:start", kwargs={"client_id": 2**63})
