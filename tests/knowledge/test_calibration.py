"""The calibration of the confidence rule: how a rule is scored, searched for, and kept away from the held-out fold."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.knowledge import calibration
from bot.knowledge.calibration import Item, evaluate, search, tune_items
from bot.knowledge.reasons import TextList
from bot.knowledge.retrieval import ConfidenceRule, FaqIndex, Reading, Word
from bot.knowledge.topics import load_topics

ROOT = Path(__file__).resolve().parents[2]


def _word(topic: int, specificity: float | None = 2.0, *, core: bool = False) -> Word:
    known = specificity is not None
    return Word(
        short=False,
        corrected=False,
        core=core,
        ours=False,
        elsewhere=False,
        specificity=specificity,
        topics=frozenset({topic}) if known else frozenset(),
        anchors={topic: specificity} if known and specificity is not None else {},
    )


def _item(words: tuple[Word, ...], bm25: tuple[float, ...], expected: int | None, locale: str = "en") -> Item:
    return Item(Reading(words, bm25, (0.0,) * len(bm25)), locale, expected, "tune", "plain")


# Topic 0 clearly wins; an off-topic line shares one word with topic 1 and says three things no topic knows.
CLEAR = _item((_word(0), _word(0)), (5.0, 1.0), 0)
OFF = _item((_word(1), _word(1, None), _word(1, None), _word(1, None)), (0.0, 2.0), None)


def test_a_rule_is_scored_by_what_it_answers_and_refuses() -> None:
    outcome = evaluate(ConfidenceRule(), [CLEAR, OFF])
    assert outcome.correct == {"en": 1.0}
    assert outcome.wrong == {"en": 0.0}
    assert outcome.refused == {"en": 1.0}
    assert outcome.off_topic_recognised == {"en": 1.0}
    reckless = evaluate(ConfidenceRule(coverage=0.0, in_domain=0.0), [CLEAR, OFF])
    assert reckless.refused == {"en": 0.0}
    assert reckless.score < outcome.score


def test_the_search_moves_away_from_a_rule_that_answers_everything() -> None:
    start = ConfidenceRule(coverage=0.0, core_coverage=0.0, in_domain=0.0)
    chosen = search([CLEAR, OFF], start)
    assert evaluate(chosen, [CLEAR, OFF]).score > evaluate(start, [CLEAR, OFF]).score
    assert evaluate(chosen, [CLEAR, OFF]).refused == {"en": 1.0}


def test_held_out_questions_leave_the_topics() -> None:
    topics = load_topics(ROOT / "knowledge" / "topics")
    question = topics["network"].questions["en"][0]
    kept = calibration._without(topics, {("network", "en", question)})
    assert question not in kept["network"].questions["en"]
    assert kept["network"].questions["zh-CN"] == topics["network"].questions["zh-CN"]
    assert isinstance(kept["network"].questions, TextList)


def test_tuning_items_are_read_by_the_index(tmp_path: Path) -> None:
    path = tmp_path / "tune.yaml"
    path.write_text(
        "in_domain:\n  - {q: forgot my password, locale: en, id: wrong-password, category: plain}\n"
        "out_of_domain:\n  - {q: what's the weather like, locale: en, category: ood}\n",
        encoding="utf-8",
    )
    index = FaqIndex.load(ROOT / "knowledge")
    items = tune_items(index, path)
    assert [item.expected for item in items] == [list(index.topics).index("wrong-password"), None]
    assert evaluate(index.rule, items).correct == {"en": 1.0}


def test_the_held_out_fold_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    # Refused by its name, before it is read: the held-out fold is never opened here.
    assert calibration.HELD_OUT.name == "faq_holdout8.yaml"
    assert calibration.main(["--tune", str(calibration.HELD_OUT), "--no-estimate"]) == 2
    assert "never used" in capsys.readouterr().err
