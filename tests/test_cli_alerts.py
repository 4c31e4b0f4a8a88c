"""``unlockbot demo lock USER REASON`` as anyone trying lock alerts meets it, and ``crm check`` on alerts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_console import Cli


@pytest.fixture
def cli(demo_home: Path) -> Cli:
    return Cli(demo_home)  # a copy of a folder where `demo seed --reset` ran


def test_a_demo_user_locked_now_hears_of_it_at_the_next_turn(cli: Cli) -> None:
    locked = cli.run("demo", "lock", "kim", "failed_password")
    assert locked.stdout.startswith("locked kim (failed_password)")
    shown = cli.run("crm", "show", "kim")
    assert "failed_password" in shown.stdout
    # The console cannot push: the housekeeping pass when the chat opens finds the lock, the first turn says it.
    chat = cli.run("chat", "--as", "kim", "--lang", "en", stdin="hello\nhello\n")
    assert chat.stdout.count("the CRM has just locked your account") == 1
    assert "Too many wrong passwords" in chat.stdout


def test_demo_lock_names_what_it_expected(cli: Cli) -> None:
    wrong = cli.run("demo", "lock", "kim", "bored", check=False)
    assert wrong.returncode == 2
    assert "expected one of failed_password" in wrong.stderr
    nobody = cli.run("demo", "lock", "zoe", "network", check=False)
    assert nobody.returncode == 2
    assert "expected a demo user" in nobody.stderr


def test_crm_check_says_the_embedded_crm_tells_about_new_locks(cli: Cli) -> None:
    checked = cli.run("crm", "check")
    assert "alerts:  yes: new locks are read every 60 s and told to the linked person" in checked.stdout
    cli.env["UNLOCKBOT_ALERTS__ENABLED"] = "false"
    assert "alerts:  off" in cli.run("crm", "check").stdout
