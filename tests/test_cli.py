"""The command line as an operator meets it: one line per failure on standard error, and the exit status.

Each test runs ``unlockbot`` in a directory of its own (``tests.test_console.Cli``), as on a fresh
machine, and reads what a shell script would: the status and the lines on standard error.
"""

from __future__ import annotations

import os
import pty
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app import App, open_app
from bot.cli import locale_from_environment
from bot.clock import ManualClock
from bot.config import Settings
from bot.errors import ConfigError
from tests.fakes import crm_section
from tests.handlers.common import free_port
from tests.test_console import Cli

PASSWORD = "hunter2-db-password"


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture
def cli(demo_home: Path) -> Cli:
    return Cli(demo_home)  # a copy of a folder where `demo seed --reset` ran


def use_a_real_crm(cli: Cli) -> None:
    """Point the demo's directory at a remote CRM (one that is down: nothing here needs it to answer)."""
    cli.env["UNLOCKBOT_CRM__BACKEND"] = "rest"
    cli.env["UNLOCKBOT_CRM__REST__BASE_URL"] = f"http://127.0.0.1:{free_port()}"
    cli.env["UNLOCKBOT_CRM__REST__TOKEN"] = "rest-token-for-tests"
    cli.env["UNLOCKBOT_CRM__RESILIENCE__RETRIES"] = "0"


# --- a demo database never meets a real CRM ----------------------------------------------------------------------


async def test_open_app_refuses_demo_data_with_a_remote_crm(app: App, settings: Settings, clock: ManualClock) -> None:
    real = Settings.model_validate(
        {
            **settings.model_dump(),
            "crm": crm_section("rest", {"base_url": "http://127.0.0.1:9", "token": "rest-token-for-tests"}),
        }
    )
    with pytest.raises(ConfigError, match="demo") as refused:
        async with open_app(real, clock=clock):
            pass
    assert "unlockbot demo clear" in str(refused.value)


def test_demo_data_stops_a_start_with_a_real_crm_until_it_is_cleared(cli: Cli) -> None:
    use_a_real_crm(cli)
    refused = cli.run("admin", "invite", "alice", check=False)
    assert refused.returncode == 2
    [line] = lines(refused.stderr)
    assert "unlockbot demo clear" in line
    assert refused.stdout == ""
    code = cli.run("demo", "code", "alice", check=False)  # the demo's secrets cannot be read through it either
    assert code.returncode == 2
    assert "unlockbot demo clear" in code.stderr

    cleared = cli.run("demo", "clear")
    assert "demo" in cleared.stdout
    checked = cli.run("crm", "check", check=False)  # starts now; the CRM itself is down
    assert checked.returncode == 1
    assert "answers: no" in checked.stdout
    assert "demo" not in checked.stderr
    with sqlite3.connect(cli.home / ".unlockbot" / "unlockbot.db") as connection:
        for table in ("bot_meta", "chat_identities", "totp_enrolments", "audit_events"):
            assert connection.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table  # noqa: S608


def test_demo_clear_refuses_a_database_that_is_not_a_demo(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    (tmp_path / ".unlockbot").mkdir()
    cli.run("db", "upgrade")
    database = cli.home / ".unlockbot" / "unlockbot.db"
    with sqlite3.connect(database) as connection:
        connection.execute("INSERT INTO bot_meta (key, value) VALUES ('installed', 'by ops')")
    result = cli.run("demo", "clear", check=False)
    assert result.returncode == 2
    assert "not a demo database" in result.stderr
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT value FROM bot_meta").fetchall() == [("by ops",)]


# --- database failures: one line, an exit status ------------------------------------------------------------------


def test_a_database_that_is_down_is_one_line_without_its_password(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    (tmp_path / ".unlockbot").mkdir()  # the embedded CRM's own database is there
    cli.env["UNLOCKBOT_DATABASE__URL"] = f"postgresql+psycopg://bot:{PASSWORD}@127.0.0.1:{free_port()}/bot"
    result = cli.run("crm", "show", "alice", check=False)
    assert result.returncode == 1
    [line] = lines(result.stderr)
    assert line.startswith("unlockbot: the database failed: ")
    assert "Connection refused" in line or "connection failed" in line
    assert PASSWORD not in result.stderr


def test_a_turn_that_fails_on_the_database_is_one_line_and_a_failed_status(cli: Cli) -> None:
    with sqlite3.connect(cli.home / ".unlockbot" / "unlockbot.db") as connection:
        connection.execute("DROP TABLE conversations")  # a database someone broke under the running bot
    result = cli.run("chat", "--as", "carol", "--lang", "en", stdin="1\n", check=False)
    assert result.returncode == 1
    assert "something went wrong on my side" in result.stdout  # the person hears it in plain words
    errors = lines(result.stderr)
    assert errors
    for line in errors:
        assert " ERROR " in line or line.startswith("unlockbot: "), line
    assert any("no such table: conversations" in line for line in errors)
    assert not any(line.startswith(("  File ", "Traceback", "[SQL:")) for line in errors)

    # With -v the operator gets the traceback (cli.run refuses one, so this runs on its own).
    verbose = subprocess.run(
        [sys.executable, "-m", "bot", "-v", "chat", "--as", "carol", "--lang", "en"],
        input="1\n",
        capture_output=True,
        text=True,
        cwd=cli.home,
        env=cli.env,
        timeout=60,
    )
    assert verbose.returncode == 1
    assert "Traceback (most recent call last)" in verbose.stderr
    assert "no such table: conversations" in verbose.stderr


# --- how much -v shows ------------------------------------------------------------------------------------------


def test_v_leaves_library_payloads_out_and_vv_lets_them_in_masked(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    (tmp_path / ".unlockbot").mkdir()
    use_a_real_crm(cli)
    cli.env["UNLOCKBOT_CRM__RESILIENCE__RETRIES"] = "1"  # so that our own code has a line to log
    assert cli.run("crm", "check", check=False).stderr == ""
    once = cli.run("-v", "crm", "check", check=False)
    assert once.returncode == 1
    assert " INFO bot.crm.resilient: CRM call probe failed" in once.stderr
    assert "httpcore" not in once.stderr  # the HTTP library's debug lines need -vv
    twice = cli.run("-vv", "crm", "check", check=False)
    assert twice.returncode == 1
    assert " DEBUG httpcore" in twice.stderr
    for shown in (once.stderr, twice.stderr):
        assert "rest-token-for-tests" not in shown


def test_faq_says_plainly_when_a_question_is_not_about_the_crm(cli: Cli) -> None:
    said = cli.run("faq", "tell me a joke", "--lang", "en").stdout
    assert "I only deal with signing in to the CRM" in said
    assert "Closest topics" not in said
    said = cli.run("faq", "明天上海天气怎么样", "--lang", "zh").stdout
    assert "只负责" in said


# --- the demo's first run: starting over, and the shell's language -------------------------------------------------


def speaking(cli: Cli, lang: str) -> Cli:
    for name in ("LC_ALL", "LC_MESSAGES"):
        cli.env.pop(name, None)
    cli.env["LANG"] = lang
    return cli


def test_demo_seed_reset_starts_over_after_console_chats_and_a_lost_audit_key(cli: Cli) -> None:
    cli.run("demo", "clear")
    cli.run("chat", "--as", "alice", "--lang", "en", stdin="hello\n")  # a console chat without the demo
    refused = cli.run("demo", check=False)
    assert refused.returncode == 2
    [line] = lines(refused.stderr)
    assert "unlockbot demo seed --reset" in line

    assert cli.run("demo", "seed", "--reset").stdout.strip() == "demo seeded"

    (cli.home / ".unlockbot" / "audit.key").unlink()  # the trail is signed with a key that is gone
    assert cli.run("demo", "seed", "--reset").stdout.strip() == "demo seeded"
    assert cli.run("audit", "verify").returncode == 0


def test_demo_seed_reset_refuses_what_a_chat_platform_wrote(cli: Cli) -> None:
    cli.run("demo", "clear")
    database = cli.home / ".unlockbot" / "unlockbot.db"
    with sqlite3.connect(database) as connection:
        connection.execute(
            "INSERT INTO processed_events (channel, event_id, at) VALUES ('telegram', 'update-1', '2026-11-29 09:00')"
        )
    refused = cli.run("demo", "seed", "--reset", check=False)
    assert refused.returncode == 2
    [line] = lines(refused.stderr)
    assert "real data" in line
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT channel FROM processed_events").fetchall() == [("telegram",)]


@pytest.mark.parametrize(
    ("lang", "greeting"),
    [("en_US.UTF-8", "Hi carol, I'm the CRM unlock assistant"), ("zh_CN.UTF-8", "我是 CRM 解锁助手")],
)
def test_the_demo_chats_in_the_shells_language(cli: Cli, lang: str, greeting: str) -> None:
    said = speaking(cli, lang).run("demo", stdin="carol\n/quit\n").stdout
    assert greeting in said
    assert "Language / 语言:" not in said  # the question; the menu has a button of that name


def test_the_demo_asks_for_a_language_at_a_terminal_when_the_shell_speaks_neither(cli: Cli) -> None:
    speaking(cli, "C.UTF-8")
    piped = cli.run("demo", stdin="carol\n/quit\n").stdout  # not a terminal: the bot's default, nothing asked
    assert "Language / 语言:" not in piped
    assert "我是 CRM 解锁助手" in piped

    terminal, replica = pty.openpty()
    try:
        os.write(terminal, b"2\ncarol\n/quit\n")  # typed ahead: the terminal holds the lines until they are read
        chat = subprocess.run(
            [sys.executable, "-m", "bot", "demo"],
            stdin=replica,
            capture_output=True,
            text=True,
            cwd=cli.home,
            env=cli.env,
            timeout=60,
            check=False,
        )
    finally:
        os.close(replica)
        os.close(terminal)
    assert chat.returncode == 0, chat.stderr
    assert "Language / 语言:" in chat.stdout
    assert "Hi carol, I'm the CRM unlock assistant" in chat.stdout


@pytest.mark.parametrize(
    ("environ", "locale"),
    [
        ({"LANG": "zh_CN.UTF-8"}, "zh-CN"),
        ({"LANG": "zh_TW.UTF-8"}, "zh-CN"),
        ({"LANG": "en_GB.UTF-8"}, "en"),
        ({"LANG": "en"}, "en"),
        ({"LANG": "fr_FR.UTF-8"}, None),
        ({"LANG": "C.UTF-8"}, None),
        ({}, None),
        ({"LANG": "en_US.UTF-8", "LC_ALL": "zh_CN.UTF-8"}, "zh-CN"),
        ({"LANG": "zh_CN.UTF-8", "LC_MESSAGES": "en_US.UTF-8"}, "en"),
    ],
)
def test_the_shells_language_is_read_as_the_c_library_reads_it(environ: dict[str, str], locale: str | None) -> None:
    assert locale_from_environment(environ) == locale
