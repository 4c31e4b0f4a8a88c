"""The plain-language explanation of each lock reason, from ``knowledge/reasons.yaml``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from bot.crm.base import LockReason
from bot.errors import ConfigError
from bot.messages import LOCALES

# Fields are named zh_CN in Python and "zh-CN" in the files.
_LOCALE_KEYS = ConfigDict(extra="forbid", frozen=True, alias_generator=lambda name: name.replace("_", "-"))


class Text(BaseModel):
    """One text in every locale."""

    model_config = _LOCALE_KEYS
    zh_CN: str
    en: str

    def __getitem__(self, locale: str) -> str:
        return self.zh_CN if locale == "zh-CN" else self.en

    @field_validator("zh_CN", "en")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()


class TextList(BaseModel):
    """A list of texts in every locale."""

    model_config = _LOCALE_KEYS
    zh_CN: tuple[str, ...]
    en: tuple[str, ...]

    def __getitem__(self, locale: str) -> tuple[str, ...]:
        return self.zh_CN if locale == "zh-CN" else self.en


class ReasonText(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    title: Text
    explanation: Text
    next_steps: TextList
    prevention: TextList
    data: Text

    def localised(self, locale: str) -> dict[str, object]:
        """This reason's texts in one locale, as a template context."""
        assert locale in LOCALES
        return {
            "title": self.title[locale],
            "explanation": self.explanation[locale],
            "next_steps": list(self.next_steps[locale]),
            "prevention": list(self.prevention[locale]),
            "data": self.data[locale],
        }


def load_reasons(path: Path) -> Mapping[LockReason, ReasonText]:
    """Read and validate the reasons file; a bad entry stops the start naming file and entry."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of reason codes")
    missing = [r.value for r in LockReason if r.value not in raw]
    unknown = [k for k in raw if k not in set(LockReason)]
    if missing or unknown:
        raise ConfigError(f"{path}: missing reasons {missing or '-'}; unknown reasons {unknown or '-'}")
    reasons: dict[LockReason, ReasonText] = {}
    for code, entry in raw.items():
        try:
            reasons[LockReason(code)] = ReasonText.model_validate(entry)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"{path}: entry {code!r}: {problems}") from None
    return reasons
