"""Logging: what each -v shows, one line per record without -v, and no secret in any line."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from bot.config import Settings
from bot.logs import LogSetup, Redactor, configure, describe, secrets_of

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.fixture
def logged() -> Iterator[tuple[io.StringIO, list[LogSetup]]]:
    """Where ``configure`` writes, and the setups to undo after the test."""
    stream = io.StringIO()
    setups: list[LogSetup] = []
    yield stream, setups
    for setup in reversed(setups):
        setup.close()


def start(logged: tuple[io.StringIO, list[LogSetup]], verbosity: int) -> LogSetup:
    stream, setups = logged
    setup = configure(verbosity, stream=stream)
    setups.append(setup)
    return setup


# --- what is masked --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        # PTB's request URLs (httpx logs them) carry the bot token; so do file URLs.
        (
            f"HTTP Request: POST https://api.telegram.org/bot{BOT_TOKEN}/getUpdates",
            [BOT_TOKEN, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"],
            ["https://api.telegram.org/bot", "/getUpdates"],
        ),
        (f"GET http://127.0.0.1:8081/file/bot{BOT_TOKEN}/photos/1.jpg", [BOT_TOKEN], ["/photos/1.jpg"]),
        (f"token is {BOT_TOKEN}", [BOT_TOKEN], ["token is"]),
        # Slack's tokens, wherever they appear.
        ("client for xoxb-1234-5678-abcdEFGH ready", ["xoxb-1234-5678-abcdEFGH", "abcdEFGH"], ["ready"]),
        ("opening with xapp-1-A0UNLOCK-42-deadbeef", ["xapp-1-A0UNLOCK-42-deadbeef"], ["opening with"]),
        ("refresh xoxe.xoxp-1-Mi0yLTE", ["Mi0yLTE"], ["refresh"]),
        # Credentials in headers and key=value pairs, quoted or not.
        (
            "headers: {'Authorization': 'Bearer s3cr3t-bearer value', 'Content-Type': 'application/json'}",
            ["s3cr3t-bearer", "value'"],
            ["Authorization", "application/json"],
        ),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", ["dXNlcjpwYXNzd29yZA"], ["Authorization: Basic"]),
        ("X-Telegram-Bot-Api-Secret-Token: hook-secret_42", ["hook-secret_42"], ["X-Telegram-Bot-Api-Secret-Token"]),
        ('{"client_secret": "cs 123 with spaces", "grant_type": "client_credentials"}', ["cs 123"], ["grant_type"]),
        ("POST /token?client_secret=abc123&grant_type=x", ["abc123"], ["grant_type=x"]),
        ("otpauth://totp/unlockbot:alice?secret=JBSWY3DPEHPK3PXP&issuer=unlockbot", ["JBSWY3DPEHPK3PXP"], ["issuer"]),
        ("password=hunter2 user=bob", ["hunter2"], ["user=bob"]),
        # Feishu's long-connection URL carries a ticket; other platforms sign with access keys.
        ("GET wss://open.feishu.cn/ws?device_id=7&ticket=t-6a1b2c&service_id=3", ["t-6a1b2c"], ["service_id=3"]),
        ('{"access_key": "ak-9f8e7d", "region": "cn"}', ["ak-9f8e7d"], ["region"]),
        # Passwords in URLs.
        ("connect postgresql+psycopg://bot:hunter2@db:5432/bot", ["hunter2"], ["postgresql+psycopg://bot:", "@db"]),
        # Link codes, with or without dashes, and in a deep link.
        ("says '/start 7KQ2-M9XA-4T6B'", ["7KQ2-M9XA-4T6B"], ["/start"]),
        ("says /start 7KQ2M9XA4T6B now", ["7KQ2M9XA4T6B"], ["now"]),
        ("link https://t.me/unlock_bot?start=7KQ2M9XA4T6B", ["7KQ2M9XA4T6B"], ["https://t.me/unlock_bot?start="]),
        # TOTP codes people typed, in the shapes libraries log payloads in.
        ("{'text': '493817', 'chat': {'id': 501}}", ["493817"], ["'chat': {'id': 501}"]),
        ('{"value":"493 817","type":"plain_text_input"}', ["493 817"], ["plain_text_input"]),
        ('{\\"value\\":\\"493817\\"}', ["493817"], ["value"]),
        ("payload=%7B%22value%22%3A%22493817%22%7D", ["493817"], ["payload="]),
        ("Message(text='４９３８１７')", ["４９３８１７"], ["Message(text="]),
    ],
)
def test_secrets_are_masked(text: str, hidden: list[str], kept: list[str]) -> None:
    masked = Redactor().redact(text, ours=False)
    for secret in hidden:
        assert secret not in masked, masked
    for plain in kept:
        assert plain in masked, masked


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-29 09:00:00,123 update 10001 in chat -1001234567890",
        "message ts 1700000100.000001 posted to D0ALICE",
        "request #12 for alice: approved by sam after 3 reminders",
        "listening on 127.0.0.1:8080",
        "GET /api/chat.postMessage 200 in 12 ms",
        "the card of request 123456 was redrawn",
    ],
)
def test_ordinary_lines_are_left_alone(text: str) -> None:
    assert Redactor().redact(text, ours=False) == text


def test_a_six_digit_run_in_our_own_lines_is_taken_for_a_code() -> None:
    redactor = Redactor()
    assert "493817" not in redactor.redact("verifying 493817 for alice", ours=True)
    assert redactor.redact("verifying 493817 for alice", ours=False) == "verifying 493817 for alice"
    assert redactor.redact("turn for telegram:501 at 2026-11-29", ours=True) == "turn for telegram:501 at 2026-11-29"


def test_configured_secrets_are_masked_wherever_they_appear() -> None:
    settings = Settings.model_validate(
        {
            "database": {"url": "postgresql+psycopg://bot:db-password-1@db/bot"},
            "security": {"secret_key": "fernet-key-value", "previous_keys": ["old-fernet-key"]},
            "telegram": {"token": BOT_TOKEN, "secret_token": "hook-secret"},
            "slack": {"bot_token": "xoxb-1", "app_token": "xapp-1", "signing_secret": "signing-value"},
            "crm": {"backend": "rest", "rest": {"base_url": "https://crm.example.com", "token": "rest-token"}},
        }
    )
    found = secrets_of(settings)
    for secret in ("db-password-1", "fernet-key-value", "old-fernet-key", BOT_TOKEN, "hook-secret", "signing-value"):
        assert secret in found
    redactor = Redactor(found)
    line = "fernet-key-value rest-token signing-value hook-secret old-fernet-key"
    assert redactor.redact(line, ours=False).split() == ["***"] * 5
    assert secrets_of(Settings()) == []


def test_a_record_with_bad_arguments_passes_unharmed() -> None:
    record = logging.LogRecord("bot.x", logging.WARNING, __file__, 1, "%d items", ("many",), None)
    assert Redactor().filter(record) is True
    assert record.args == ("many",)  # logging reports the mistake itself, as it would without the filter


def test_describe_gives_one_line() -> None:
    error = RuntimeError("(sqlite3.OperationalError) no such table: x\n[SQL: SELECT secret FROM x]\n(Background)")
    assert describe(error) == "RuntimeError: (sqlite3.OperationalError) no such table: x"
    assert describe(KeyError()) == "KeyError"


# --- levels ------------------------------------------------------------------------------------------------------


def fail() -> None:
    try:
        raise ValueError(f"no such table: conversations\n[parameters: token='{BOT_TOKEN}']")
    except ValueError:
        logging.getLogger("bot.engine").exception("a turn failed for telegram:%s", 501)


def test_without_v_only_warnings_show_each_on_one_line(logged: tuple[io.StringIO, list[LogSetup]]) -> None:
    stream, _ = logged
    setup = start(logged, 0)
    logging.getLogger("bot.engine").debug("our debug")
    logging.getLogger("telegram.ext").debug("library debug")
    logging.getLogger("bot.serve").warning("first\nsecond")
    fail()
    out = stream.getvalue()
    assert "debug" not in out
    lines = out.splitlines()
    assert len(lines) == 2, out
    assert lines[0].endswith("WARNING bot.serve: first second")
    assert lines[1].endswith(
        "ERROR bot.engine: a turn failed for telegram:501 (ValueError: no such table: conversations)"
    )
    assert "Traceback" not in out
    assert setup.errors == 1


def test_v_shows_our_debug_and_tracebacks_but_no_library_payloads(
    logged: tuple[io.StringIO, list[LogSetup]],
) -> None:
    stream, _ = logged
    start(logged, 1)
    logging.getLogger("bot.engine").debug("our debug")
    logging.getLogger("telegram.ext.ExtBot").debug("library payload")
    logging.getLogger("httpx").info("HTTP Request: POST ...")
    logging.getLogger("sqlalchemy.engine.Engine").info("SELECT 1")
    logging.getLogger("bot.handlers.slack.bolt").debug("socket mode payload")  # slack-bolt's logger, named by us
    logging.getLogger("bot.handlers.slack.bolt").info("a new session is established")
    fail()
    out = stream.getvalue()
    assert "our debug" in out
    assert "a new session is established" in out
    for library in ("library payload", "HTTP Request", "SELECT 1", "socket mode payload"):
        assert library not in out
    assert "Traceback (most recent call last)" in out
    assert BOT_TOKEN not in out


def test_vv_adds_library_payloads_masked(logged: tuple[io.StringIO, list[LogSetup]]) -> None:
    stream, _ = logged
    setup = start(logged, 2)
    setup.add_secrets(["configured-secret"])
    logging.getLogger("telegram.ext.ExtBot").debug("payload %s", {"text": "493817", "secret": "configured-secret"})
    logging.getLogger("bot.handlers.slack.bolt").debug("socket mode payload")
    logging.getLogger("httpx").info("HTTP Request: POST http://127.0.0.1/bot%s/getMe", BOT_TOKEN)
    out = stream.getvalue()
    assert "payload" in out
    assert "socket mode payload" in out
    assert "/bot***/getMe" in out
    for secret in ("493817", "configured-secret", BOT_TOKEN):
        assert secret not in out


def test_every_root_handler_gets_the_filter_and_close_undoes_it(logged: tuple[io.StringIO, list[LogSetup]]) -> None:
    other = io.StringIO()
    handler = logging.StreamHandler(other)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        setup = start(logged, 0)
        logging.getLogger("bot").error("code %s", f"at https://api.telegram.org/bot{BOT_TOKEN}/x")
        assert BOT_TOKEN not in other.getvalue()
        assert "bot***" in other.getvalue()
        setup.close()
        assert setup.redactor not in handler.filters
        assert all(setup.redactor not in h.filters for h in root.handlers)
    finally:
        root.removeHandler(handler)


def test_echoed_sql_goes_through_the_filter_to_standard_error(
    logged: tuple[io.StringIO, list[LogSetup]], capsys: pytest.CaptureFixture[str]
) -> None:
    stream, _ = logged
    setup = start(logged, 0)
    setup.add_secrets(["echoed-secret-value"])
    engine = create_engine("sqlite://", echo=True)  # what [database] echo = true asks for
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT :value"), {"value": "echoed-secret-value"})
    finally:
        engine.dispose()
    out = stream.getvalue()
    assert "SELECT ?" in out
    assert "echoed-secret-value" not in out
    assert capsys.readouterr().out == ""  # not by a handler of SQLAlchemy's own, unfiltered, on standard output
