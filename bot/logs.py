"""Logging for the command line: how much each ``-v`` shows, and one filter that keeps secrets out of every line.

    (none)  warnings and errors, one line each; an exception shows as its type and first line
    -v      also our own debug lines (the ``bot`` loggers), and tracebacks
    -vv     also the libraries' debug output: Bot API and Slack payloads, HTTP requests, SQL

Whatever the level, every record passes one ``Redactor`` on the root handlers before it is written. It
masks the secrets in the settings, bot tokens in Bot API URLs, Slack tokens, ``Authorization`` headers and
``secret=``-style values, passwords in URLs, link codes, and TOTP codes where a payload carries what a
person typed (in our own lines, any run of six digits on its own).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

from pydantic import BaseModel, SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.config import Settings, mask_url

MASK = "***"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Shorter configured values are not masked: they would mask ordinary words.
_MIN_SECRET = 4
# slack-bolt and its Socket Mode client log through the logger they are given, which ours names under "bot";
# at DEBUG it writes whole payloads, so only -vv lets those through.
_PAYLOAD_LOGGERS_UNDER_BOT = ("bot.handlers.slack.bolt",)

# A Bot API token in a URL (…/bot<token>/method, …/file/bot<token>/…), or on its own.
_BOT_TOKEN = re.compile(r"(?<=/bot)\d+:[\w-]+|\b\d{6,12}:[\w-]{30,}")
_SLACK_TOKEN = re.compile(r"\bxox[a-z]-[\w-]+|\bxapp-[\w-]+")
# key: value, key=value, 'key': 'value' and "key": "value", where the key names a credential.
_CREDENTIAL = re.compile(
    r"""(?ix)
    (?P<key>(?<![\w-])[\w-]{0,40}(?:authorization|secret|password|passwd|token|api[_-]?key|cookie)[\w-]{0,20}
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
# In our own lines a run of six digits on its own is a code: ids, times and counts never take that shape.
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

    @property
    def errors(self) -> int:
        """How many records at ERROR or above were written."""
        return self._tally.errors

    def add_secrets(self, secrets: Iterable[str]) -> None:
        self.redactor.add(secrets)

    def close(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        for handler in root.handlers:
            handler.removeFilter(self.redactor)
        for name, level in self._levels.items():
            logging.getLogger(name or None).setLevel(level)


def configure(verbosity: int, *, stream: TextIO | None = None) -> LogSetup:
    """Log to ``stream`` (standard error) at the level ``-v`` given ``verbosity`` times asks for."""
    root = logging.getLogger()
    names = ("", "bot", *_PAYLOAD_LOGGERS_UNDER_BOT)
    levels = {name: logging.getLogger(name or None).level for name in names}
    redactor = Redactor()
    tally = _Tally()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT) if verbosity >= 1 else _OneLine(redactor))
    handler.addFilter(tally)
    root.addHandler(handler)
    for each in root.handlers:  # a handler someone else added must not print secrets either
        each.addFilter(redactor)
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    logging.getLogger("bot").setLevel(logging.DEBUG if verbosity >= 1 else logging.NOTSET)
    for name in _PAYLOAD_LOGGERS_UNDER_BOT:
        logging.getLogger(name).setLevel(logging.INFO if verbosity == 1 else logging.NOTSET)
    return LogSetup(redactor, handler, tally, levels)


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
