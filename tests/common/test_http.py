import pytest

from mailgrant.common.http import HttpSettings, ProxyError, http_client, validate_proxy


@pytest.mark.parametrize(
    "proxy",
    ["http://proxy.example.com:3128", "socks5://10.0.0.1:1080", "https://user:pw@proxy:8443"],
)
def test_valid_proxies(proxy: str) -> None:
    assert validate_proxy(proxy) == proxy


@pytest.mark.parametrize(
    "proxy",
    [
        "proxy:3128",
        "ftp://proxy:21",
        "http://",
        "http://proxy:99999",
        "http://proxy:3128/path",
        "http://proxy:abc",
        "javascript:alert(1)",
        "http://[::1",
    ],
)
def test_malformed_proxies_are_refused(proxy: str) -> None:
    with pytest.raises(ProxyError):
        validate_proxy(proxy)


def test_requests_go_through_the_proxy(fake_provider) -> None:
    fake_provider.answer("/via-proxy", {"ok": True})
    settings = HttpSettings(proxy=fake_provider.url, verify=True, timeout=5)
    with http_client(settings) as client:
        # The fake sees the absolute URI a proxy receives; the target host is never resolved.
        response = client.get("http://provider.invalid/via-proxy")
    assert response.status_code == 200
    assert fake_provider.requests[0].headers["Host"] == "provider.invalid"


def test_a_socks_proxy_makes_a_client() -> None:
    """socks5 is an accepted scheme, so its support (socksio) must be installed: a missing one
    made every request of such a client a server error."""
    with http_client(HttpSettings(proxy="socks5://127.0.0.1:1080", timeout=3)) as client:
        assert client._mounts


def test_timeouts_and_no_environment_proxies(monkeypatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://should-not-be-used:1")
    with http_client(HttpSettings(timeout=3)) as client:
        assert client.timeout.read == 3
        assert not client._mounts  # trust_env is off: only the client's own proxy applies
