"""FAQ topics from ``knowledge/topics/*.yaml``: what a worried employee asks and what the bot answers.

Each file holds one topic. ``load_topics`` validates all of them at start; any problem stops the start with
a ``ConfigError`` naming the file and the entry (and the field, where there is one).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from bot.errors import ConfigError
from bot.knowledge.files import read_yaml
from bot.knowledge.reasons import Text, TextList

# An action names the flow that answers a topic from the person's own facts; ``bot/flows/faq.py`` maps each to
# its flow, and a topic whose action has no flow there is answered with its written text.
ACTIONS = frozenset(
    {
        "why-locked",
        "unlock-steps",
        "data-safety",
        "network",
        "receive-info",
        "normal-or-abnormal",
        "maintenance",
        "impact",
        "usage-count",
        "system-fault",
        "request-status",
        "cannot-sign-in",
        "when-back",
    }
)

# The topics the product promises; more may be added, none of these removed.
REQUIRED_TOPICS = (
    "why-locked",
    "wrong-password",
    "unusual-ip",
    "license",
    "system-fault",
    "violation",
    "network",
    "usage-count",
    "data-safety",
    "receive-info",
    "normal-or-abnormal",
    "maintenance",
    "unlock-steps",
    "prevention",
    "after-unlock-check",
    "impact",
    "request-status",
    "cannot-sign-in",
    "when-back",
)


class Topic(BaseModel):
    """One FAQ topic: a stable id, its texts in every locale, and the topics a reader may want next."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    title: Text
    answer: Text
    questions: TextList
    keywords: TextList
    related: tuple[str, ...] = ()
    action: str | None = None

    @field_validator("questions", "keywords")
    @classmethod
    def _some_in_every_locale(cls, value: TextList) -> TextList:
        for locale, items in (("zh-CN", value.zh_CN), ("en", value.en)):
            if not items:
                raise ValueError(f"{locale}: needs at least one entry")
            if not all(item.strip() for item in items):
                raise ValueError(f"{locale}: entries must not be empty")
        return value

    @field_validator("action")
    @classmethod
    def _known_action(cls, value: str | None) -> str | None:
        if value is not None and value not in ACTIONS:
            raise ValueError(f"unknown action {value!r}; expected one of {sorted(ACTIONS)} or none")
        return value


def load_topic(path: Path) -> Topic:
    """Read and validate one topic file; its ``id`` must be the file name without ``.yaml``."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with id, title, answer, questions, keywords, related")
    entry = raw.get("id", path.stem)
    try:
        topic = Topic.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '-'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: topic {entry!r}: {problems}") from None
    if topic.id != path.stem:
        raise ConfigError(f"{path}: topic {topic.id!r}: id: must equal the file name {path.stem!r}")
    return topic


def load_topics(directory: Path) -> Mapping[str, Topic]:
    """Read every ``*.yaml`` in ``directory``, check the links between topics, and return them by id."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: no such topics folder")
    topics: dict[str, Topic] = {}
    paths: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yaml")):
        topic = load_topic(path)
        topics[topic.id] = topic
        paths[topic.id] = path
    missing = [topic_id for topic_id in REQUIRED_TOPICS if topic_id not in topics]
    if missing:
        raise ConfigError(f"{directory}: missing topics {', '.join(missing)} (one <id>.yaml file each)")
    for topic in topics.values():
        for related in topic.related:
            if related not in topics:
                raise ConfigError(f"{paths[topic.id]}: topic {topic.id!r}: related: unknown topic {related!r}")
            if related == topic.id:
                raise ConfigError(f"{paths[topic.id]}: topic {topic.id!r}: related: a topic cannot relate to itself")
    return MappingProxyType(topics)
