"""Refuse every network connection that is not to this machine, loudly.

Installed for the whole test session by ``conftest.py``: a test that tries to
reach the internet fails with ``InternetAccessDenied`` instead of hanging or,
worse, passing because the outside world happened to answer.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any


class InternetAccessDenied(RuntimeError):
    pass


def _is_local(address: Any) -> bool:
    if not isinstance(address, tuple):
        return True  # a Unix socket path
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost would need DNS


_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex
_original_getaddrinfo = socket.getaddrinfo


def _connect(self: socket.socket, address: Any) -> None:
    if not _is_local(address):
        raise InternetAccessDenied(f"tests may only connect to 127.0.0.1, not {address!r}")
    _original_connect(self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    if not _is_local(address):
        raise InternetAccessDenied(f"tests may only connect to 127.0.0.1, not {address!r}")
    return _original_connect_ex(self, address)


def _getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host not in (None, "localhost") and not _is_local((host, 0)):
        raise InternetAccessDenied(f"tests may not look up {host!r}")
    return _original_getaddrinfo(host, *args, **kwargs)


def install() -> None:
    socket.socket.connect = _connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _getaddrinfo
