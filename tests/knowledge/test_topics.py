"""The FAQ topic files: the real ones load, and a broken one stops the start naming the file and the entry."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bot.errors import ConfigError
from bot.knowledge.topics import ACTIONS, REQUIRED_TOPICS, load_topics

TOPICS = Path(__file__).resolve().parents[2] / "knowledge" / "topics"


def test_the_real_topics_load_with_every_promised_id() -> None:
    topics = load_topics(TOPICS)
    assert set(REQUIRED_TOPICS) <= set(topics)
    for topic_id, topic in topics.items():
        assert topic.id == topic_id
        for locale in ("zh-CN", "en"):
            assert topic.title[locale]
            assert topic.answer[locale]
            assert topic.questions[locale]
            assert topic.keywords[locale]
        assert all(related in topics for related in topic.related)
        assert topic.action is None or topic.action in ACTIONS


def test_topics_that_start_a_flow_name_their_action() -> None:
    topics = load_topics(TOPICS)
    assert topics["why-locked"].action == "why-locked"
    assert topics["unlock-steps"].action == "unlock-steps"
    assert topics["prevention"].action is None


@pytest.fixture
def topics_copy(tmp_path: Path) -> Path:
    directory = tmp_path / "topics"
    shutil.copytree(TOPICS, directory)
    return directory


def _edit(directory: Path, topic_id: str, change: Callable[[dict[str, object]], None]) -> Path:
    path = directory / f"{topic_id}.yaml"
    entry = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(entry)
    path.write_text(yaml.safe_dump(entry, allow_unicode=True), encoding="utf-8")
    return path


def _drop_english_title(entry: dict[str, object]) -> None:
    title = entry["title"]
    assert isinstance(title, dict)
    del title["en"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_drop_english_title, r"topic 'network': title\.en: Field required"),
        (lambda entry: entry.update(related=["unlock-steps", "no-such-topic"]), r"related: unknown topic 'no-such"),
        (lambda entry: entry.update(action="dance"), r"topic 'network': action: .*unknown action 'dance'"),
        (lambda entry: entry.update(id="networking"), r"topic 'networking': id: must equal the file name"),
        (lambda entry: entry.update(colour="blue"), r"topic 'network': colour: Extra inputs are not permitted"),
        (lambda entry: entry.update(questions={"zh-CN": [], "en": ["Is it my wifi?"]}), r"questions: .*zh-CN: needs"),
        (lambda entry: entry.update(answer={"zh-CN": " ", "en": "Yes."}), r"answer\.zh-CN: .*must not be empty"),
    ],
    ids=["missing-locale", "unknown-related", "bad-action", "wrong-id", "unknown-field", "no-questions", "blank"],
)
def test_a_broken_topic_names_the_file_and_the_entry(
    topics_copy: Path, change: Callable[[dict[str, object]], None], expected: str
) -> None:
    path = _edit(topics_copy, "network", change)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_topics(topics_copy)
    assert str(path) in str(caught.value)


def test_invalid_yaml_names_the_file(topics_copy: Path) -> None:
    path = topics_copy / "impact.yaml"
    path.write_text("id: impact\ntitle: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read") as caught:
        load_topics(topics_copy)
    assert str(path) in str(caught.value)


def test_a_file_that_is_not_a_mapping_names_the_file(topics_copy: Path) -> None:
    path = topics_copy / "impact.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping") as caught:
        load_topics(topics_copy)
    assert str(path) in str(caught.value)


def test_a_missing_topic_is_named(topics_copy: Path) -> None:
    (topics_copy / "maintenance.yaml").unlink()
    with pytest.raises(ConfigError, match="missing topics maintenance"):
        load_topics(topics_copy)


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such topics folder"):
        load_topics(tmp_path / "nowhere")
