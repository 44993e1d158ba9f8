"""The client's address behind trusted proxies, whichever way they write X-Forwarded-For."""

import pytest
from django.test import RequestFactory

from web.clientip import client_ip

PROXY = "10.0.0.2"


def _behind_proxy(forwarded_for: str) -> str:
    return client_ip(RequestFactory().get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for))


@pytest.fixture(autouse=True)
def trusted_proxies(settings: object) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/24", "2001:db8:ffff::/48"]


@pytest.mark.parametrize(
    "forwarded_for, address",
    [
        ("198.51.100.7", "198.51.100.7"),
        ("198.51.100.7:5123", "198.51.100.7"),
        (" 198.51.100.7:5123 ", "198.51.100.7"),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("[2001:db8::7]", "2001:db8::7"),
        ("2001:db8::7", "2001:db8::7"),
        ("2001:DB8:0:0::7", "2001:db8::7"),
        ("::1", "::1"),
    ],
)
def test_an_address_written_with_or_without_a_port_is_the_client(forwarded_for: str, address: str) -> None:
    assert _behind_proxy(forwarded_for) == address


def test_trusted_hops_written_with_ports_are_skipped() -> None:
    assert _behind_proxy("192.0.2.1, 203.0.113.5:40000, 10.0.0.3:8080, [2001:db8:ffff::1]:443") == "203.0.113.5"


@pytest.mark.parametrize(
    "forwarded_for",
    [
        "198.51.100.7:http",
        "198.51.100.7:",
        "198.51.100.7:٣",
        "[2001:db8::7",
        "[2001:db8::7]x",
        "[2001:db8::7]:",
        "name",
    ],
)
def test_garbage_where_the_client_should_be_gives_the_proxy(forwarded_for: str) -> None:
    assert _behind_proxy(forwarded_for) == PROXY


def test_a_peer_that_is_no_proxy_cannot_choose_its_address() -> None:
    request = RequestFactory().get("/", REMOTE_ADDR="198.51.100.9", HTTP_X_FORWARDED_FOR="203.0.113.5:1234")
    assert client_ip(request) == "198.51.100.9"
