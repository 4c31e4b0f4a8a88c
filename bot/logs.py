"""Logging: how much ``-v`` and ``[log]`` show, in text or JSON, and one filter that keeps secrets out of every line.

    (none)  warnings and errors, one line each; an exception shows as its type and first line.
            ``unlockbot serve`` also logs at ``[log] level`` (default ``info``: one line per turn)
    -v      also our own debug lines (the ``bot`` loggers), and tracebacks
    -vv     also the libraries' debug output: Bot API and Slack payloads, HTTP requests, SQL

``[log] format = "json"`` writes each record as one JSON object on one line (time, level, logger,
message, the fields a line was given with ``extra=``, and the stack trace of any exception), for a log
collector; it applies to every command once the settings are read.

Whatever the level or format, every record passes one ``Redactor`` on the root handlers before it is
written. It masks the secrets in the settings, bot tokens in Bot API URLs, Slack tokens,
``Authorization`` headers and ``secret=``-style values, passwords in URLs, link codes, TOTP codes where
a payload carries what a person typed (in our own lines, any run of six digits on its own), and
shortens e-mail addresses to their first letter and domain.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from pydantic import BaseModel, SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.config import LogSettings, Settings, mask_url

MASK = "***"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Shorter configured values are not masked: they would mask ordinary words.
_MIN_SECRET = 4
# slack-bolt and its Socket Mode client log through the logger they are given, which ours names under "bot";
# at DEBUG it writes whole payloads, so only -vv lets those through.
_PAYLOAD_LOGGERS_UNDER_BOT = ("bot.handlers.slack.bolt",)
# [database] echo makes SQLAlchemy print SQL through a handler of its own, past the filter, unless the
# logger has one already: a NullHandler there sends echoed SQL through the root handlers instead.
_ECHO_LOGGER = "sqlalchemy.engine.Engine"
# SQLAlchemy keeps its loggers at WARNING on its own; -vv lowers this one so that SQL is shown.
_SQL_LOGGER = "sqlalchemy.engine"

# A Bot API token in a URL (…/bot<token>/method, …/file/bot<token>/…), or on its own.
_BOT_TOKEN = re.compile(r"(?<=/bot)\d+:[\w-]+|\b\d{6,12}:[\w-]{30,}")
_SLACK_TOKEN = re.compile(r"\bxox[a-z]-[\w-]+|\bxapp-[\w-]+")
# key: value, key=value, 'key': 'value' and "key": "value", where the key names a credential.
_CREDENTIAL = re.compile(
    r"""(?ix)
    (?P<key>(?<![\w-])[\w-]{0,40}(?:authorization|secret|password|passwd|token|ticket|api[_-]?key|access[_-]?key|cookie)[\w-]{0,20}
        ["']?\s*[:=]\s*)
    (?:
        (?P<quote>["'])(?P<scheme>(?:bearer|basic|bot|token)\s+)?[^"'\n]*(?P=quote)
      | (?P<bare_scheme>(?:bearer|basic)\s+)?[^\s"',;&{}\[\]()]+
    )
    """
)
# Link codes (bot/identity/link_codes.py): three groups of four from Crockford's base32, dashes optional.
_CODE_CHAR = "[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]"
_LINK_CODE = re.compile(rf"(?<![\w-]){_CODE_CHAR}{{4}}-{_CODE_CHAR}{{4}}-{_CODE_CHAR}{{4}}(?![\w-])")
# Without dashes only a run with both a digit and a letter is taken for one: ordinary words have no digits.
_LINK_CODE_RUN = re.compile(rf"(?<![\w-])(?=[A-Za-z]*\d)(?=\d*[A-Za-z]){_CODE_CHAR}{{12}}(?![\w-])")
_DEEP_LINK = re.compile(r"(?i)(?P<key>/start\s+|[?&]start=)[\w-]+")
# A quoted value that is only a TOTP code (what a person typed, inside a logged payload).
_DIGIT = "[0-9\uff10-\uff19]"
_QUOTED_CODE = re.compile(rf"(?P<quote>\"|'|%22)\s*{_DIGIT}{{3}}[\s-]?{_DIGIT}{{3}}\s*(?P<escape>\\?)(?P=quote)")
_KEYED_CODE = re.compile(rf"(?i)\b(?P<key>text|value|code)(?P<sep>\s*[:=]\s*){_DIGIT}{{3}}[\s-]?{_DIGIT}{{3}}\b")
# An e-mail address: only its first letter and its domain are kept (a***@example.com).
_EMAIL = re.compile(r"(?<![\w.+%-])(?P<first>[A-Za-z0-9])[\w.+%-]*@(?P<domain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
# In our own lines a run of six digits on its own is taken for a code: our ids, times and counts seldom look so.
# (``\d`` also matches full-width digits, as typed on a Chinese keyboard.)
_OWN_CODE = re.compile(r"(?<![\w.:/#+-])\d{6}(?![\w.:/-])")


def describe(error: BaseException) -> str:
    """The exception as one line: its type and the first line of its message (database errors add SQL below)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _ours(record: logging.LogRecord) -> bool:
    return record.name == "bot" or record.name.startswith("bot.")


def _credential(match: re.Match[str]) -> str:
    if match["quote"]:
        return f"{match['key']}{match['quote']}{match['scheme'] or ''}{MASK}{match['quote']}"
    return f"{match['key']}{match['bare_scheme'] or ''}{MASK}"


def _quoted_code(match: re.Match[str]) -> str:
    return f"{match['quote']}{MASK}{match['escape']}{match['quote']}"


class Redactor(logging.Filter):
    """Masks secrets in a record's message and traceback; installed on every root handler."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        known = {*self._secrets, *(secret for secret in secrets if len(secret) >= _MIN_SECRET)}
        # Longest first, so that a secret containing another is masked whole.
        self._secrets = tuple(sorted(known, key=len, reverse=True))

    def redact(self, text: str, *, ours: bool) -> str:
        """``text`` with every secret masked; ``ours`` for lines from our own code, where six digits are a code."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        text = mask_url(text)
        text = _BOT_TOKEN.sub(MASK, text)
        text = _SLACK_TOKEN.sub(MASK, text)
        text = _CREDENTIAL.sub(_credential, text)
        text = _DEEP_LINK.sub(rf"\g<key>{MASK}", text)
        text = _LINK_CODE.sub(MASK, text)
        text = _LINK_CODE_RUN.sub(MASK, text)
        text = _QUOTED_CODE.sub(_quoted_code, text)
        text = _KEYED_CODE.sub(rf"\g<key>\g<sep>{MASK}", text)
        text = _EMAIL.sub(rf"\g<first>{MASK}@\g<domain>", text)
        if ours:
            text = _OWN_CODE.sub(MASK, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        ours = _ours(record)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the handler reports it, as it would without this filter
            return True
        record.msg, record.args = self.redact(message, ours=ours), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text, ours=ours)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info, ours=ours)
        return True


class _OneLine(logging.Formatter):
    """Without -v: each record on one line, an exception as its type and first line, never a traceback."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(FORMAT)
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        error = record.exc_info[1] if record.exc_info else None
        ours = _ours(record)
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            line = super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved
        if error is not None:
            line += f" ({self._redactor.redact(describe(error), ours=ours)})"
        return " ".join(line.splitlines())


# What every LogRecord has; anything else on a record came with ``extra=`` and becomes a field of its JSON.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class _Json(logging.Formatter):
    """One JSON object per record, on one line; every string in it masked as the message is."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        ours = _ours(record)
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self._redactor.redact(record.getMessage(), ours=ours),
        }
        for key, value in vars(record).items():
            if key in _RECORD_ATTRIBUTES or key.startswith("_") or key in entry:
                continue
            plain = value is None or isinstance(value, bool | int | float)
            entry[key] = value if plain else self._redactor.redact(str(value), ours=ours)
        if record.exc_info:
            if record.exc_info[1] is not None:
                entry["error"] = self._redactor.redact(describe(record.exc_info[1]), ours=ours)
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = self._redactor.redact(record.exc_text, ours=ours)
        if record.stack_info:
            entry["stack"] = self._redactor.redact(record.stack_info, ours=ours)
        return json.dumps(entry, ensure_ascii=False)


def _text_formatter(verbosity: int, redactor: Redactor) -> logging.Formatter:
    return logging.Formatter(FORMAT) if verbosity >= 1 else _OneLine(redactor)


LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _set_levels(verbosity: int, level: int, *, serving: bool) -> None:
    """Our loggers at ``level`` when serving (at least WARNING otherwise), the libraries' at WARNING or above;
    -v opens our debug lines, -vv the libraries' too."""
    ours = logging.DEBUG if verbosity >= 1 else (level if serving else max(level, logging.WARNING))
    logging.getLogger().setLevel(logging.DEBUG if verbosity >= 2 else max(level, logging.WARNING))
    logging.getLogger("bot").setLevel(ours)
    for name in _PAYLOAD_LOGGERS_UNDER_BOT:
        # Payloads under our own name: never below INFO unless -vv asks for the libraries' debug output.
        logging.getLogger(name).setLevel(logging.NOTSET if verbosity >= 2 else max(logging.INFO, ours))
    logging.getLogger(_SQL_LOGGER).setLevel(logging.INFO if verbosity >= 2 else logging.NOTSET)


class _Tally(logging.Filter):
    """Counts what was logged as an error, so a command can end with a failed status."""

    def __init__(self) -> None:
        super().__init__()
        self.errors = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            self.errors += 1
        return True


@dataclass
class LogSetup:
    """What ``configure`` installed, so that secrets can be added once the settings are read, and undone."""

    redactor: Redactor
    handler: logging.Handler
    _tally: _Tally
    _levels: dict[str, int] = field(default_factory=dict)
    _echo: logging.Handler = field(default_factory=logging.NullHandler)
    _verbosity: int = 0

    @property
    def errors(self) -> int:
        """How many records at ERROR or above were written."""
        return self._tally.errors

    def add_secrets(self, secrets: Iterable[str]) -> None:
        self.redactor.add(secrets)

    @property
    def json(self) -> bool:
        """Whether lines are written as JSON."""
        return isinstance(self.handler.formatter, _Json)

    def use(self, settings: LogSettings, *, serving: bool = False) -> None:
        """Apply ``[log]``: its format to every command, its level to a server (``serving``)."""
        if settings.format == "json":
            self.handler.setFormatter(_Json(self.redactor))
        else:
            self.handler.setFormatter(_text_formatter(self._verbosity, self.redactor))
        _set_levels(self._verbosity, LEVELS[settings.level], serving=serving)

    def close(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        logging.getLogger(_ECHO_LOGGER).removeHandler(self._echo)
        for handler in root.handlers:
            handler.removeFilter(self.redactor)
        for name, level in self._levels.items():
            logging.getLogger(name or None).setLevel(level)


def configure(
    verbosity: int, *, stream: TextIO | None = None, settings: LogSettings | None = None, serving: bool = False
) -> LogSetup:
    """Log to ``stream`` (standard error) at the level ``-v`` given ``verbosity`` times asks for.

    ``settings`` (``[log]``) may come now or, once the settings are read, through ``LogSetup.use``.
    """
    root = logging.getLogger()
    names = ("", "bot", *_PAYLOAD_LOGGERS_UNDER_BOT, _SQL_LOGGER)
    levels = {name: logging.getLogger(name or None).level for name in names}
    redactor = Redactor()
    tally = _Tally()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_text_formatter(verbosity, redactor))
    handler.addFilter(tally)
    root.addHandler(handler)
    for each in root.handlers:  # a handler someone else added must not print secrets either
        each.addFilter(redactor)
    setup = LogSetup(redactor, handler, tally, levels, _verbosity=verbosity)
    setup.use(settings or LogSettings(), serving=serving)
    logging.getLogger(_ECHO_LOGGER).addHandler(setup._echo)
    return setup


def _url_password(url: str) -> str | None:
    try:
        return make_url(url).password if url else None
    except ArgumentError:
        return None


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in the settings: each ``SecretStr`` anywhere in them, and database passwords."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, tuple | list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(settings)
    for url in (settings.database.url, settings.crm.sql.url):
        password = _url_password(url)
        if password:
            found.append(password)
    return [secret for secret in found if secret]
