"""The client's address: X-Forwarded-For is believed only as far as it was written by proxies we trust."""

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def _networks(trusted: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted)


def _address(text: str) -> IPAddress | None:
    """The address in an X-Forwarded-For entry, bare or as some proxies write it with a port:
    "192.0.2.1:5123", "[2001:db8::1]:443" or "[2001:db8::1]"; None for anything else."""
    host, port = text.strip(), None
    if host.startswith("["):
        host, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    elif host.count(":") == 1:  # a bare IPv6 address has at least two colons
        host, _, port = host.partition(":")
    if port is not None and not (port.isascii() and port.isdigit()):
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_trusted(address: IPAddress | None) -> bool:
    return address is not None and any(address in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_ip(request: HttpRequest) -> str:
    """REMOTE_ADDR, unless it is a trusted proxy: then the right-most X-Forwarded-For entry that is not
    one (each trusted hop appends the address it saw; anything left of the first untrusted one may be forged)."""
    remote: str = request.META.get("REMOTE_ADDR", "")
    if not _is_trusted(_address(remote)):
        return remote
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return remote  # garbage where an address should be: fall back to the proxy itself
        if not _is_trusted(address):
            return str(address)
    return remote
