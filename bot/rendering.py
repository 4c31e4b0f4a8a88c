"""Turning replies into text: Jinja2 templates per locale under ``templates/<locale>/``.

The Jinja ``Environment`` is built by ``make_environment`` and passed in; it
uses ``StrictUndefined`` so a missing value fails a test instead of printing
nothing. Button labels live in ``templates/<locale>/labels.yaml``; every
locale must define the same labels and the same templates.

Times are shown in the person's time zone when the reply is given one, else in
``[bot] timezone``, else in the locale's own (``LOCALE_ZONES``), and written
the locale's way by the one ``when`` filter. Templates read ``locale`` and
``timezone`` from their context, so a template that imports macros which
show times imports them ``with context``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, pass_context
from jinja2.runtime import Context

from bot.clock import person_zone
from bot.crm.base import LockReason
from bot.errors import ConfigError
from bot.knowledge.reasons import ReasonText
from bot.knowledge.topics import Topic
from bot.messages import LOCALES, Rendered, RenderedButton, Reply

_BLANK_LINES = re.compile(r"\n{3,}")

# Beijing time is what a Chinese reader assumes, so only another zone is named in a Chinese reply.
_ZH_HOME_OFFSET = timedelta(hours=8)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@lru_cache(maxsize=256)
def _offset_name(offset: timedelta) -> str:
    """``UTC``, ``UTC+8``, ``UTC-3:30``."""
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    sign, minutes = ("+" if minutes > 0 else "-"), abs(minutes)
    hours, rest = divmod(minutes, 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def _zone_note(local: datetime, locale: str) -> str:
    offset = local.utcoffset() or timedelta()
    if locale == "zh-CN":
        return "" if offset == _ZH_HOME_OFFSET else f"（{_offset_name(offset)}）"
    return f" {_offset_name(offset)}"


def _date(local: datetime, locale: str) -> str:
    if locale == "zh-CN":
        return f"{local.year}年{local.month}月{local.day}日"
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year},"


def format_time(value: datetime, locale: str, zone: ZoneInfo) -> str:
    """A moment as a reader of ``locale`` writes it: ``2026年11月29日 17:00``, ``29 Nov 2026, 09:00 UTC``."""
    local = value.astimezone(zone)
    return f"{_date(local, locale)} {local:%H:%M}{_zone_note(local, locale)}"


def format_period(start: datetime, end: datetime, locale: str, zone: ZoneInfo) -> str:
    """From one moment to another, the date said once when both fall on the same day."""
    first, last = start.astimezone(zone), end.astimezone(zone)
    word = " 至 " if locale == "zh-CN" else " to "
    if first.date() != last.date() or first.utcoffset() != last.utcoffset():
        return format_time(first, locale, zone) + word + format_time(last, locale, zone)
    return f"{_date(first, locale)} {first:%H:%M}{word}{last:%H:%M}{_zone_note(last, locale)}"


def _reply_locale(context: Context) -> str:
    locale = context.get("locale")
    if locale not in LOCALES or "timezone" not in context:
        # An imported template sees only its own context unless imported "with context".
        raise ConfigError(f"{context.name}: needs the reply's locale and time zone; import macros 'with context'")
    return str(locale)


def make_environment(
    templates_dir: Path,
    timezone: str | None,
    reasons: Mapping[LockReason, ReasonText] | None = None,
    topics: Mapping[str, Topic] | None = None,
) -> Environment:
    """The Jinja environment: ``when``, ``until``, ``minutes`` and ``quoted`` filters; ``reason_text(code)`` and
    ``topic_text(id)`` give the texts of a lock reason or FAQ topic in the locale being rendered.

    ``timezone`` is ``[bot] timezone``: the zone for a person whose own is not known (``None``: the
    locale's zone in ``LOCALE_ZONES``).
    """
    env = Environment(
        loader=FileSystemLoader(templates_dir),
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701 (plain text, not HTML: channels escape for their own markup)
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )

    def zone_for(context: Context, locale: str) -> ZoneInfo:
        return person_zone(context.get("timezone"), timezone, locale)

    def moment(value: datetime | str) -> datetime:
        # Facts stored as JSON keep their times as ISO text.
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    @pass_context
    def when(context: Context, value: datetime | str | None) -> str:
        locale = _reply_locale(context)
        if value is None:
            return "—"
        return format_time(moment(value), locale, zone_for(context, locale))

    @pass_context
    def until(context: Context, start: datetime | str, end: datetime | str) -> str:
        """``start|until(end)``: a span of time, such as a maintenance window."""
        locale = _reply_locale(context)
        return format_period(moment(start), moment(end), locale, zone_for(context, locale))

    def minutes(value: timedelta | float | int) -> int:
        seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
        return max(1, math.ceil(seconds / 60))

    @pass_context
    def quoted(context: Context, value: object) -> str:
        """Words from outside the bot (the CRM's, a person's), marked as a quotation, never part of a sentence."""
        text = str(value).strip()
        return f"“{text}”" if context.get("locale") == "zh-CN" else f'"{text}"'

    @pass_context
    def reason_text(context: Context, code: str) -> dict[str, object]:
        if reasons is None:
            raise ConfigError("templates use reason_text() but no reasons were loaded")
        return reasons[LockReason(code)].localised(context["locale"])

    @pass_context
    def topic_text(context: Context, topic_id: str) -> dict[str, str]:
        if topics is None:
            raise ConfigError("templates use topic_text() but no FAQ topics were loaded")
        topic, locale = topics[topic_id], context["locale"]
        return {"title": topic.title[locale], "answer": topic.answer[locale]}

    env.filters["when"] = when
    env.filters["until"] = until
    env.filters["minutes"] = minutes
    env.filters["quoted"] = quoted
    env.globals["reason_text"] = reason_text
    env.globals["topic_text"] = topic_text
    return env


class Renderer:
    """Renders ``Reply`` objects for one locale."""

    def __init__(self, env: Environment, templates_dir: Path) -> None:
        self._env = env
        self._labels = self._load_labels(templates_dir)
        # A label without parameters reads the same every time: rendered once (a reply shows several).
        self._plain: dict[tuple[str, str], str] = {}
        self._check_locales_match(templates_dir)

    def _load_labels(self, templates_dir: Path) -> Mapping[str, Mapping[str, Template]]:
        labels: dict[str, dict[str, Template]] = {}
        for locale in LOCALES:
            path = templates_dir / locale / "labels.yaml"
            try:
                raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"{path}: cannot read: {exc}") from exc
            if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
                raise ConfigError(f"{path}: expected a mapping of label names to text")
            unquoted = [repr(k) for k in raw if not isinstance(k, str)]
            if unquoted:  # YAML reads yes/no/on/off as booleans unless quoted
                raise ConfigError(f"{path}: label names must be text; quote {', '.join(unquoted)}")
            labels[locale] = {key: self._env.from_string(value) for key, value in raw.items()}
        keys = [set(labels[locale]) for locale in LOCALES]
        if any(k != keys[0] for k in keys):
            differing = sorted(set[str]().union(*keys) - keys[0].intersection(*keys))
            raise ConfigError(f"{templates_dir}: labels.yaml differ between locales: {', '.join(differing)}")
        return labels

    @staticmethod
    def _check_locales_match(templates_dir: Path) -> None:
        names = [
            {p.relative_to(templates_dir / locale).as_posix() for p in (templates_dir / locale).rglob("*.j2")}
            for locale in LOCALES
        ]
        if any(n != names[0] for n in names):
            differing = sorted(set[str]().union(*names) - names[0].intersection(*names))
            raise ConfigError(f"{templates_dir}: templates differ between locales: {', '.join(differing)}")

    def label(self, key: str, locale: str, params: Mapping[str, object] | None = None) -> str:
        if params:
            return self._labels[locale][key].render(locale=locale, **params).strip()
        plain = self._plain.get((key, locale))
        if plain is None:
            plain = self._plain[(key, locale)] = self._labels[locale][key].render(locale=locale).strip()
        return plain

    def render(self, reply: Reply, locale: str, timezone: str | None = None) -> Rendered:
        """``timezone``: the person's own IANA zone, when their chat profile gives one."""
        template = self._env.get_template(f"{locale}/{reply.template}.j2")
        text = template.render(locale=locale, timezone=timezone, **reply.context).strip()
        return Rendered(
            text=_BLANK_LINES.sub("\n\n", text),
            buttons=tuple(RenderedButton(b.action, self.label(b.label, locale, b.params)) for b in reply.buttons),
            image=reply.image,
            secret_input=reply.secret_input,
            private=reply.private,
            locale=locale,
        )
