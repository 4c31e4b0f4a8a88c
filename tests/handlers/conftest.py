"""What every channel's tests share."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def nothing_failed_in_the_background(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Channels run turns after answering the platform, where a failure is only logged: such a log fails the test.

    The records of the test itself ("call"): after the ``yield`` ``caplog.records`` holds only the teardown's.
    """
    caplog.set_level(logging.WARNING)
    yield
    failures = [record.getMessage() for record in caplog.get_records("call") if record.levelno >= logging.ERROR]
    assert failures == []
