"""Safe server-side URL fetching, the pure part: address checks (resolve and refuse, never
connect to a non-loopback address), scheme/port/form checks and the allow list. The fetches
against a real HTTP server are in tests/service/test_url_fetches.py."""
from __future__ import annotations

import threading
import time

import pytest

from loupe_gateway import urlfetch
from loupe_gateway.urlfetch import FetchError, UrlFetcher

pytestmark = pytest.mark.unit


def allowed(**kw) -> UrlFetcher:
    return UrlFetcher(allow="127.0.0.1/32", **kw)


# --- address checks: resolve and refuse (nothing is sent) ------------------------------------

@pytest.mark.parametrize("url, why", [
    ("http://localhost/a.png", "loopback"),
    ("http://127.0.0.1/a.png", "loopback"),
    ("http://[::1]/a.png", "loopback"),
    ("http://0.0.0.0/a.png", "unspecified"),
    ("http://[::]/a.png", "unspecified"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://10.0.0.1/a.png", "private"),
    ("http://192.168.1.1/a.png", "private"),
    ("http://172.16.0.1/a.png", "private"),
    ("http://[fd00::1]/", "unique-local"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://100.64.0.1/", "non-public"),
    ("http://2130706433/a.png", "loopback"),   # decimal 127.0.0.1
    ("http://0177.0.0.1/a.png", "loopback"),   # octal
    ("http://0x7f.1/a.png", "loopback"),       # hex, short form
    ("http://017700000001/a.png", "loopback"),  # octal, one number
    ("http://[::ffff:127.0.0.1]/", "loopback"),  # IPv4-mapped
    ("http://[::ffff:10.0.0.1]/", "private"),
    ("http://[::10.0.0.1]/", "private"),       # IPv4-compatible
    ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),  # NAT64 of 169.254.169.254
    ("http://[2002:7f00:1::]/", "loopback"),   # 6to4 of 127.0.0.1
])
def test_non_public_addresses_are_refused_with_the_reason(url, why):
    with pytest.raises(FetchError) as err:
        UrlFetcher().check(url)
    assert err.value.code == "BadRequestImageUrl" and err.value.http_status == 400
    assert err.value.reason == urlfetch.ADDRESS
    message = err.value.message
    assert f"resolves to a {why}" in message or f"resolves to an {why}" in message


def test_every_resolved_address_is_checked():
    # A name with one public and one private address is refused, whatever the order.
    for answer in (["93.184.216.34", "10.1.2.3"], ["10.1.2.3", "93.184.216.34"]):
        fetcher = UrlFetcher(resolver=lambda host, port, a=answer: a)
        with pytest.raises(FetchError, match="private address"):
            fetcher.check("https://images.example.test/cat.png")


def test_a_resolver_that_hangs_times_out():
    release = threading.Event()

    def hanging(host, port):
        release.wait(5)
        return ["93.184.216.34"]

    started = time.monotonic()
    try:
        with pytest.raises(FetchError, match="took over 0.2 s") as err:
            UrlFetcher(resolver=hanging, dns_timeout=0.2).check("https://slow.example.test/a.png")
        assert err.value.code == "BadRequestImageUrl"
        assert time.monotonic() - started < 2
    finally:
        release.set()


def test_public_address_passes_and_the_checked_ip_is_what_is_connected_to():
    fetcher = UrlFetcher(resolver=lambda host, port: ["93.184.216.34"])
    assert fetcher.check("https://images.example.test/a/cat.png?x=1") == (
        "https", "images.example.test", 443, ["93.184.216.34"], "/a/cat.png?x=1")


@pytest.mark.parametrize("url, reason", [
    ("ftp://93.184.216.34/a.png", urlfetch.SCHEME),
    ("file:///etc/passwd", urlfetch.SCHEME),
    ("gopher://93.184.216.34/", urlfetch.SCHEME),
    ("/relative.png", urlfetch.SCHEME),
    ("http://93.184.216.34:8080/a.png", urlfetch.PORT),
    ("https://93.184.216.34:80/a.png", urlfetch.PORT),
    ("http://user:pw@93.184.216.34/a.png", urlfetch.INVALID_URL),
    ("", urlfetch.INVALID_URL),
    ("http://93.184.216.34/a b.png", urlfetch.INVALID_URL),
    ("http://[::1/", urlfetch.INVALID_URL),
    ("http:///a.png", urlfetch.INVALID_URL),
    ("http://name.invalid/a.png", urlfetch.RESOLVE),
])
def test_scheme_port_and_form_are_checked(url, reason):
    def resolver(host, port):
        if host.endswith(".invalid"):
            raise OSError("no such host")
        return [host]
    with pytest.raises(FetchError) as err:
        UrlFetcher(resolver=resolver).check(url)
    assert err.value.reason == reason and err.value.code == "BadRequestImageUrl"


def test_default_ports_are_accepted_explicitly():
    fetcher = UrlFetcher(resolver=lambda host, port: ["93.184.216.34"])
    assert fetcher.check("http://93.184.216.34:80/x")[2] == 80
    assert fetcher.check("https://93.184.216.34:443/x")[2] == 443


def test_allow_list_by_network_and_by_host():
    assert allowed().check("http://127.0.0.1:9/x")[3] == ["127.0.0.1"]
    assert UrlFetcher(allow="localhost").check("http://localhost:9/x")[1] == "localhost"
    assert UrlFetcher(allow="10.0.0.0/8, ::1").check("http://[::1]:9/")[3] == ["::1"]
    with pytest.raises(FetchError, match="private address"):
        UrlFetcher(allow="10.0.0.0/16").check("http://10.1.0.1/")
    with pytest.raises(ValueError):
        UrlFetcher(allow="not a host/")
