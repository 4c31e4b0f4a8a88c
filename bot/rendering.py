"""Turning replies into text: Jinja2 templates per locale under ``templates/<locale>/``.

The Jinja ``Environment`` is built by ``make_environment`` and passed in; it
uses ``StrictUndefined`` so a missing value fails a test instead of printing
nothing. Button labels live in ``templates/<locale>/labels.yaml``; every
locale must define the same labels and the same templates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, pass_context
from jinja2.runtime import Context

from bot.crm.base import LockReason
from bot.errors import ConfigError
from bot.knowledge.reasons import ReasonText
from bot.knowledge.topics import Topic
from bot.messages import LOCALES, Rendered, RenderedButton, Reply

_BLANK_LINES = re.compile(r"\n{3,}")


def make_environment(
    templates_dir: Path,
    timezone: str,
    reasons: Mapping[LockReason, ReasonText] | None = None,
    topics: Mapping[str, Topic] | None = None,
) -> Environment:
    """The Jinja environment: ``when`` and ``minutes`` filters; ``reason_text(code)`` and
    ``topic_text(id)`` give the texts of a lock reason or FAQ topic in the locale being rendered."""
    env = Environment(
        loader=FileSystemLoader(templates_dir),
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701 (plain text, not HTML: channels escape for their own markup)
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    zone = ZoneInfo(timezone)

    def when(value: datetime | str | None) -> str:
        if value is None:
            return "—"
        if isinstance(value, str):  # facts stored as JSON keep their times as ISO text
            value = datetime.fromisoformat(value)
        local = value.astimezone(zone)
        return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"

    def minutes(value: timedelta | float | int) -> int:
        seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
        return max(1, math.ceil(seconds / 60))

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
    env.filters["minutes"] = minutes
    env.globals["reason_text"] = reason_text
    env.globals["topic_text"] = topic_text
    return env


class Renderer:
    """Renders ``Reply`` objects for one locale."""

    def __init__(self, env: Environment, templates_dir: Path) -> None:
        self._env = env
        self._labels = self._load_labels(templates_dir)
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
        return self._labels[locale][key].render(locale=locale, **(params or {})).strip()

    def render(self, reply: Reply, locale: str) -> Rendered:
        template = self._env.get_template(f"{locale}/{reply.template}.j2")
        text = template.render(locale=locale, **reply.context).strip()
        return Rendered(
            text=_BLANK_LINES.sub("\n\n", text),
            buttons=tuple(RenderedButton(b.action, self.label(b.label, locale, b.params)) for b in reply.buttons),
            image=reply.image,
            secret_input=reply.secret_input,
            private=reply.private,
            locale=locale,
        )
