"""The test session cannot reach the internet."""

import socket

import pytest

from tests.offline import InternetAccessDenied


def test_connecting_outside_fails_loudly() -> None:
    with pytest.raises(InternetAccessDenied), socket.create_connection(("93.184.215.14", 80), timeout=1):
        pass


def test_name_lookups_outside_fail_loudly() -> None:
    with pytest.raises(InternetAccessDenied):
        socket.getaddrinfo("example.com", 443)


def test_loopback_is_allowed() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    with socket.create_connection(server.getsockname(), timeout=1):
        pass
    server.close()
