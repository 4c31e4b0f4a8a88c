"""Typed commands ("unlock me", "帮我解锁"): phrases from ``knowledge/commands.yaml`` mapped to actions."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping
from pathlib import Path

import yaml

from bot.errors import ConfigError
from bot.messages import LOCALES

_PUNCTUATION = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")
_CJK = re.compile(r"[\u3400-\u9fff]")


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text)).strip()


class CommandMatcher:
    """Finds the action a typed message names, if it names one."""

    def __init__(self, phrases: Mapping[str, Collection[str]]) -> None:
        self._exact: dict[str, str] = {}
        self._contained: list[tuple[str, str]] = []
        for action, items in phrases.items():
            for phrase in items:
                key = normalise(phrase)
                self._exact[key] = action
                self._contained.append((key, action))
        self._contained.sort(key=lambda item: len(item[0]), reverse=True)

    def exact(self, text: str) -> str | None:
        """The action only when the whole message is one of its phrases."""
        return self._exact.get(normalise(text))

    def match(self, text: str) -> str | None:
        key = normalise(text)
        if not key:
            return None
        if key in self._exact:
            return self._exact[key]
        padded = f" {key} "
        for phrase, action in self._contained:
            # Chinese has no spaces between words, so a phrase there matches as text;
            # a one-character phrase would match too much.
            if _CJK.search(phrase) and len(phrase) >= 2 and phrase in key:
                return action
            if not _CJK.search(phrase) and " " in phrase and f" {phrase} " in padded:
                return action
        return None

    @classmethod
    def load(cls, path: Path, actions: Collection[str]) -> CommandMatcher:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of actions to phrases")
        phrases: dict[str, list[str]] = {}
        for action, entry in raw.items():
            if action not in actions:
                raise ConfigError(f"{path}: entry {action!r}: unknown action; expected one of {sorted(actions)}")
            if not isinstance(entry, dict) or set(entry) != set(LOCALES):
                raise ConfigError(f"{path}: entry {action!r}: expected phrases for exactly {', '.join(LOCALES)}")
            items = [p for locale in LOCALES for p in entry[locale]]
            if not all(isinstance(p, str) and p.strip() for p in items):
                raise ConfigError(f"{path}: entry {action!r}: every phrase must be non-empty text")
            phrases[action] = items
        return cls(phrases)
