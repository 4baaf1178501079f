"""Who is asking, by network address: the one answer every limit (throttles, login lockout) uses.

``X-Forwarded-For`` is written by whoever sends the request, so it is believed only when the
request comes from a proxy named in ``TRUSTED_PROXIES`` (CIDRs). Then the nearest hop that is not
itself a trusted proxy is the client; everything further left could be made up. Without trusted
proxies the address is the peer's, ``REMOTE_ADDR``: 70 requests with 70 different headers are one
client.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.cache
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(meta: Mapping[str, Any]) -> str:
    """The client's address from a request's ``META`` (see the module docstring)."""
    remote = str(meta.get("REMOTE_ADDR") or "")
    networks = _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ())))
    if not networks or not _trusted(remote, networks):
        return remote
    hops = [hop.strip() for hop in str(meta.get("HTTP_X_FORWARDED_FOR") or "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:  # a trusted proxy never writes this: the hop is not believable
                return remote
    return hops[0] if hops else remote


def request_client_address(request: HttpRequest) -> str:
    """For django-axes (``AXES_CLIENT_IP_CALLABLE``): the same address the API throttles count."""
    return client_address(request.META)
