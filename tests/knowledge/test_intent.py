"""The example layer: off-topic examples, nearest neighbours, and their part in refusing what is not ours."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.knowledge.intent import IntentModel, character_grams, load_off_topic
from bot.knowledge.retrieval import ConfidenceRule, FaqIndex, Reading, Word

ROOT = Path(__file__).resolve().parents[2]
KNOWLEDGE = ROOT / "knowledge"


@pytest.fixture(scope="module")
def index() -> FaqIndex:
    return FaqIndex.load(KNOWLEDGE)


def test_the_shipped_off_topic_examples_load_in_both_languages() -> None:
    examples = load_off_topic(KNOWLEDGE / "off_topic.yaml")
    assert set(examples) == {"zh-CN", "en"}
    assert all(len(lines) >= 40 for lines in examples.values())


def test_no_off_topic_file_means_no_examples(tmp_path: Path) -> None:
    assert load_off_topic(tmp_path / "off_topic.yaml") == {}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- a list\n", "expected `zh-CN:` and `en:`"),
        ("zh-CN: [天气]\nen: [weather]\nfr: [météo]\n", "expected `zh-CN:` and `en:`"),
        ("zh-CN: [天气]\n", "en: expected a list of at least one example message"),
        ("zh-CN: [天气, '']\nen: [weather]\n", "zh-CN: entry 2: expected non-empty text"),
    ],
)
def test_a_broken_off_topic_file_is_reported_with_its_name(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "off_topic.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_off_topic(path)
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_character_grams_cover_word_pieces_and_chinese_runs() -> None:
    grams = character_grams("vpn断了")
    assert {"<vp", "vpn", "<vpn>", "断", "断了"} <= set(grams)
    assert "<vpn断" not in grams


def test_the_nearest_example_decides_a_class_score() -> None:
    examples = [
        (["weather"], "weather in berlin", 0),
        (["rain"], "will it rain", 0),
        (["password"], "forgot my password", 1),
    ]
    model = IntentModel(examples, 2)
    rain, password = model.neighbours(["rain"], "rain tomorrow?"), model.neighbours(["password"], "password gone")
    assert rain[0] > rain[1]
    assert password[1] > password[0]
    assert model.neighbours([], "") == [0.0, 0.0]


# Written for this test, in neither the topics, the off-topic examples nor the evaluation folds.
@pytest.mark.parametrize(
    "question",
    [
        "how can I export my pipeline to a spreadsheet",
        "how do I set up email signatures in the CRM",
        "CRM里怎么给商机加一个附件",
        "怎么批量修改客户的所属行业",
        "what's a good place for lunch near the office",
    ],
)
def test_how_tos_about_other_crm_features_are_not_answered(index: FaqIndex, question: str) -> None:
    assert index.search(question).answer_id is None


def test_a_question_far_more_like_an_off_topic_example_is_called_off_topic(index: FaqIndex) -> None:
    reading = index.read("how can I export my pipeline to a spreadsheet")
    assert reading.off_topic_likeness > max(reading.likeness)
    assert index.search("how can I export my pipeline to a spreadsheet").off_topic


def _word(*, core: bool) -> Word:
    return Word(False, False, core, False, False, 2.0, frozenset({0}), {0: 2.0})


@pytest.mark.parametrize(("core", "off_topic"), [(False, True), (True, False)])
def test_the_off_topic_likeness_never_overrules_a_core_word(core: bool, off_topic: bool) -> None:
    reading = Reading((_word(core=core),), (3.0, 1.0), (0.2, 0.0), (0.2, 0.1), 0.9)
    verdict = ConfidenceRule().judge(reading)
    assert verdict.off_topic is off_topic
    assert (verdict.answer is None) is off_topic


@pytest.mark.parametrize(
    ("question", "topic_id"),
    [
        ("my account is locked, how do I get it unlocked", "unlock-steps"),
        ("账号被锁了，怎么解锁", "unlock-steps"),
    ],
)
def test_a_locked_out_question_is_never_off_topic_for_resembling_a_how_to(
    index: FaqIndex, question: str, topic_id: str
) -> None:
    result = index.search(question)
    assert not result.off_topic
    assert result.answer_id == topic_id


def test_an_index_without_off_topic_examples_still_answers() -> None:
    index = FaqIndex.load(KNOWLEDGE)
    bare = FaqIndex.build(index.topics)
    reading = bare.read("is my data safe?")
    assert reading.off_topic_likeness == 0.0
    assert len(reading.likeness) == len(index.topics)
    assert bare.search("is my data safe?").answer_id == "data-safety"
