"""``[log] level`` and ``[log] format``: JSON lines a collector can parse, one line per turn, nothing secret.

``serve`` runs with ``format = "json"`` against the fake Bot API while a person links with a link code
and unlocks with a TOTP code; every line written must parse as JSON, and none may carry the token, a
code, the link code, a configured secret or a full e-mail address.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import admin, demo
from bot.app import App
from bot.cli import main
from bot.config import LogSettings, Settings, load_settings
from bot.logs import LogSetup, Redactor, configure, secrets_of
from bot.serve import serve
from tests.fakes.telegram_api import FakeBotApi, Person
from tests.handlers.common import free_port
from tests.handlers.test_telegram import ALICE, use_telegram, wait_for_health

pytestmark = pytest.mark.filterwarnings(
    r"ignore:.*attribute `retry_after` will be of type:telegram.warnings.PTBDeprecationWarning"
)

ROOT = Path(__file__).resolve().parent.parent
TURN_FIELDS = {"channel", "flow", "step", "outcome", "duration_s"}


def lines_of(text: str) -> list[dict[str, Any]]:
    """Every line as JSON; a line that is not JSON fails the test, naming it."""
    parsed = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
        assert isinstance(entry, dict), line
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
        parsed.append(entry)
    return parsed


def absent(secret: str, text: str) -> bool:
    if secret.isdigit():  # a code counts only on its own, not inside a longer number
        return re.search(rf"(?<!\d){secret}(?!\d)", text) is None
    return secret not in text


@pytest.fixture
def logged() -> Iterator[tuple[io.StringIO, list[LogSetup]]]:
    stream = io.StringIO()
    setups: list[LogSetup] = []
    yield stream, setups
    for setup in reversed(setups):
        setup.close()


async def test_serve_writes_json_lines_one_per_turn_and_nothing_secret(
    app: App, logged: tuple[io.StringIO, list[LogSetup]]
) -> None:
    stream, setups = logged
    setup = configure(0, stream=stream, settings=LogSettings(format="json"), serving=True)
    setups.append(setup)
    setup.add_secrets(secrets_of(app.settings))
    port = free_port()
    async with FakeBotApi() as api:
        use_telegram(app, api)
        app.settings = app.settings.model_copy(update={"http": app.settings.http.model_copy(update={"port": port})})
        assert app.settings.security.secret_key is not None
        used = [api.token, app.settings.security.secret_key.get_secret_value(), demo.demo_secret("alice")]
        stop = asyncio.Event()
        running = asyncio.create_task(serve(app, stop=stop, delivery_interval=0.05))
        try:
            await wait_for_health(port, running)
            invitation = await admin.invite(app, "alice", by="test")
            used.append(invitation.issued.code)
            alice = Person(api, ALICE)
            await alice.says(f"/start {invitation.issued.code}", expect="alice")
            await alice.says("unlock me", expect="6-digit code")
            used.append(await demo.current_code(app, "alice"))
            await alice.says(used[-1], expect="unlocked")
        finally:
            stop.set()
            await asyncio.wait_for(running, timeout=10)
    written = stream.getvalue()
    entries = lines_of(written)
    turns = [entry for entry in entries if entry["message"].startswith("turn ")]
    assert len(turns) >= 3, written
    for turn in turns:
        assert turn.keys() >= TURN_FIELDS, turn
        assert turn["level"] == "info"
        assert turn["logger"] == "bot.engine"
        assert turn["channel"] == "telegram"
        assert turn["outcome"] == "ok"
        assert isinstance(turn["duration_s"], float)
    assert ("unlock", "code") in {(turn["flow"], turn["step"]) for turn in turns}  # waiting for alice's code
    assert any(entry["message"].startswith("listening on") for entry in entries)
    # Info for our own lines, warnings for the libraries': their requests and SQL only at -vv.
    assert not [entry for entry in entries if not entry["logger"].startswith("bot") and entry["level"] == "info"]
    for secret in used:
        assert absent(secret, written), f"{secret!r} is in the log"
    assert "alice@example.com" not in written


def test_errors_carry_their_stack_trace_masked(logged: tuple[io.StringIO, list[LogSetup]]) -> None:
    stream, setups = logged
    setup = configure(0, stream=stream, settings=LogSettings(format="json"))
    setups.append(setup)
    setup.add_secrets(["configured-secret-1"])
    try:
        raise RuntimeError("could not reach alice@example.com with configured-secret-1")
    except RuntimeError:
        logging.getLogger("bot.serve").warning("delivery failed, code %s", "493817", exc_info=True)
    logging.getLogger("bot.engine").error(
        "a multi\nline message", extra={"channel": "slack", "user_note": "bob@corp.example"}
    )
    first, second = lines_of(stream.getvalue())
    assert first["level"] == "warning"
    assert first["message"] == "delivery failed, code ***"
    assert first["error"] == "RuntimeError: could not reach a***@example.com with ***"
    assert first["exception"].startswith("Traceback (most recent call last):")
    assert "test_errors_carry_their_stack_trace_masked" in first["exception"]
    assert "configured-secret-1" not in first["exception"]
    assert "alice@example.com" not in first["exception"]
    assert second["message"] == "a multi\nline message"
    assert second["channel"] == "slack"
    assert second["user_note"] == "b***@corp.example"
    assert setup.errors == 1


@pytest.mark.parametrize(
    ("verbosity", "settings", "serving", "shown"),
    [
        # serve at the default level: our info lines, the libraries' warnings
        (0, LogSettings(), True, {"bot.engine:info", "httpx:warning"}),
        # other commands stay quiet unless -v
        (0, LogSettings(), False, {"httpx:warning"}),
        # [log] level = "debug" opens our debug lines, never the libraries' (SQL, HTTP requests)
        (0, LogSettings(level="debug"), True, {"bot.engine:debug", "bot.engine:info", "httpx:warning"}),
        (0, LogSettings(level="error"), True, set()),
        # -v opens our debug lines whatever the level; the libraries keep to the level
        (1, LogSettings(level="error"), False, {"bot.engine:debug", "bot.engine:info"}),
        (
            2,
            LogSettings(),
            True,
            {"bot.engine:debug", "bot.engine:info", "httpx:warning", "httpx:info", "sqlalchemy.engine.Engine:info"},
        ),
    ],
)
def test_levels(
    logged: tuple[io.StringIO, list[LogSetup]], verbosity: int, settings: LogSettings, serving: bool, shown: set[str]
) -> None:
    stream, setups = logged
    setups.append(
        configure(verbosity, stream=stream, settings=settings.model_copy(update={"format": "json"}), serving=serving)
    )
    logging.getLogger("bot.engine").debug("ours")
    logging.getLogger("bot.engine").info("ours")
    logging.getLogger("httpx").info("HTTP Request: POST http://127.0.0.1/")
    logging.getLogger("httpx").warning("retrying")
    logging.getLogger("sqlalchemy.engine.Engine").info("SELECT 1")
    assert {f"{entry['logger']}:{entry['level']}" for entry in lines_of(stream.getvalue())} == shown


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("linked alice@example.com to U0ALICE", "linked a***@example.com to U0ALICE"),
        ("<mailto:Bob.Smith+crm@mail.corp.example|Bob>", "<mailto:B***@mail.corp.example|Bob>"),
        ('{"email": "x@y.cn"}', '{"email": "x***@y.cn"}'),
        (
            "postgresql+psycopg://unlockbot:***@db:5432/unlockbot",
            "postgresql+psycopg://unlockbot:***@db:5432/unlockbot",
        ),
        ("no address here @ all, user@localhost", "no address here @ all, user@localhost"),
    ],
)
def test_email_addresses_keep_only_their_first_letter_and_domain(text: str, masked: str) -> None:
    assert Redactor().redact(text, ours=False) == masked


def test_the_example_config_documents_the_defaults() -> None:
    example = tomllib.loads((ROOT / "unlockbot.example.toml").read_text(encoding="utf-8"))
    assert LogSettings.model_validate(example["log"]) == LogSettings()
    defaults = Settings()
    for channel in ("telegram", "slack", "feishu", "dingtalk", "wecom"):  # a straight copy turns nothing on
        section = getattr(defaults, channel)
        assert type(section).model_validate(example[channel]) == section, channel


def test_the_command_line_writes_json_once_the_settings_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "unlockbot.toml"
    config.write_text(f'[bot]\ndata_dir = "{tmp_path / "data"}"\n\n[log]\nformat = "json"\n', encoding="utf-8")
    assert load_settings(config, environ={}).log.format == "json"
    base = ["--config", str(config)]
    assert main([*base, "demo", "seed"]) == 0
    capsys.readouterr()
    assert main([*base, "demo", "code", "alice"]) == 0
    code = capsys.readouterr().out.strip()
    monkeypatch.setattr("sys.stdin", io.StringIO(f"unlock me\n{code}\n"))
    assert main(["-v", *base, "chat", "--as", "alice", "--lang", "en"]) == 0
    out, err = capsys.readouterr()
    assert "unlocked" in out
    entries = lines_of(err)
    turns = [entry for entry in entries if entry["message"].startswith("turn ")]
    assert [turn["channel"] for turn in turns] == ["console"] * 3  # the start, "unlock me", the code
    assert absent(code, err)
    assert not [entry for entry in entries if entry["logger"].startswith(("sqlalchemy", "aiosqlite"))]  # -vv only

    # A failure after the settings were read is one more JSON line, not a bare one.
    assert main([*base, "crm", "show", "nobody@example.com"]) == 1
    out, err = capsys.readouterr()
    (failure,) = lines_of(err)
    assert failure["level"] == "error"
    assert "n***@example.com" in failure["message"]
