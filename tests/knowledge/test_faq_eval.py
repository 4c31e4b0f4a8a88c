"""Accuracy on whole question sets, per language, and ``unlockbot faq`` end to end.

Nine folds, all in the same format (``in_domain: [{q, locale, id, category}]``, ``out_of_domain: [{q, locale,
category}]``):

- ``tests/data/faq_tune.yaml``, the tuning fold: the confidence rule was calibrated on it and the knowledge
  was improved against it, so it is checked always, against the targets;
- ``faq_holdout.yaml`` to ``faq_holdout6.yaml``, held-out folds in their day: each was looked at once scored,
  so each is tuning data now, held to the level it stands at (``FLOORS``) so that nothing falls back. With
  ``faq_tune.yaml`` they are also training data now: their questions are copied into ``knowledge/training/``,
  which the learned layer (``bot.knowledge.learned``) is trained on;
- ``faq_holdout7.yaml``, written blind and scored once before the learned layer (top-1 zh 93.7 %, en 90.0 %;
  refusal zh 97.5 %, en 95.0 %). Never tuned on nor trained on; with the learned layer it stands at top-1
  zh 98.4 %, en 97.9 %; refusal zh 100 %, en 95.0 %;
- ``faq_holdout8.yaml`` (``HELD_OUT``), the held-out fold: 380 questions and 80 off-topic lines written by
  someone who saw neither the knowledge nor the other folds, never used to tune or train anything. Scored
  once, after the learned layer was added (chosen by leave-one-fold-out on the tuning folds, never on this
  one): top-1 zh 97.9 %, en 98.4 %; refusal 97.5 % in both, so both targets are met on unseen questions. It
  is held to that level: a change that makes unseen questions worse fails here. Whoever tunes against it
  must first have a new held-out fold written.

An in-domain question counts only when ``answer_id`` is its topic: the right topic offered without confidence
is a miss. Targets per language: top-1 accuracy >= 95 %, out-of-domain refusal >= 95 %.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.knowledge.retrieval import FaqIndex

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
TUNE = DATA / "faq_tune.yaml"
HELD_OUT = DATA / "faq_holdout8.yaml"
LOCALES = ("zh-CN", "en")
CATEGORIES = frozenset({"plain", "typo", "shorthand", "mixed"})
TARGET = 0.95
# Where each former held-out fold stands now, rounded down: it must not fall below (the targets are TARGET).
# The first: top-1 zh 99.1 %, en 91.7 %; refusal 100 % in both (when it became tuning data: zh 89.7 %,
# en 81.7 %; refusal zh 86.2 %, en 88.5 %). The second: top-1 zh 98.3 %, en 98.3 %; refusal 100 % in both
# (when scored: zh 89.6 %, en 93.0 %; refusal zh 92.3 %, en 96.2 %). The third: top-1 zh 100 %, en 99.1 %;
# refusal 100 % in both (when scored: zh 96.5 %, en 94.7 %; refusal zh 93.3 %, en 86.7 %). The fourth: top-1
# zh 96.7 %, en 94.7 %; refusal zh 100 %, en 97.5 % (when scored: zh 91.4 %, en 88.8 %; refusal zh 100 %,
# en 97.5 %). The fifth: top-1 zh 97.4 %, en 96.3 %; refusal zh 100 %, en 97.5 % (when scored: zh 94.2 %,
# en 91.6 %; refusal zh 92.5 %, en 92.5 %). The sixth: top-1 zh 90.5 %, en 91.6 %; refusal 100 % in both (when
# scored: zh 87.9 %, en 88.9 %; refusal 100 % in both). Since then the tuning folds' questions are the learned
# layer's training data (knowledge/training/), so the bot scores them almost perfectly (top-1 99.3 % to 100 %,
# refusal 100 %) and the floors below are that level, rounded down: they guard against a fall, they say nothing
# about new questions (bot/knowledge/learned.py gives the leave-one-fold-out estimate, which does). The seventh,
# never trained on: where it stands with the learned layer. The held-out fold: where it stood when it was
# scored once.
FLOORS = {
    DATA / "faq_holdout.yaml": {"top-1": {"zh-CN": 0.99, "en": 0.99}, "refusal": {"zh-CN": 1.0, "en": 1.0}},
    DATA / "faq_holdout2.yaml": {"top-1": {"zh-CN": 0.99, "en": 0.99}, "refusal": {"zh-CN": 1.0, "en": 1.0}},
    DATA / "faq_holdout3.yaml": {"top-1": {"zh-CN": 1.0, "en": 0.99}, "refusal": {"zh-CN": 1.0, "en": 1.0}},
    DATA / "faq_holdout4.yaml": {"top-1": {"zh-CN": 0.99, "en": 0.99}, "refusal": {"zh-CN": 1.0, "en": 1.0}},
    DATA / "faq_holdout5.yaml": {"top-1": {"zh-CN": 0.99, "en": 0.99}, "refusal": {"zh-CN": 1.0, "en": 1.0}},
    DATA / "faq_holdout6.yaml": {"top-1": {"zh-CN": 0.99, "en": 0.99}, "refusal": {"zh-CN": 1.0, "en": 1.0}},
    DATA / "faq_holdout7.yaml": {"top-1": {"zh-CN": 0.98, "en": 0.97}, "refusal": {"zh-CN": 1.0, "en": 0.95}},
    HELD_OUT: {"top-1": {"zh-CN": 0.97, "en": 0.98}, "refusal": {"zh-CN": 0.97, "en": 0.97}},
}

Items = list[dict[str, str]]


@pytest.fixture(scope="module")
def index() -> FaqIndex:
    return FaqIndex.load(ROOT / "knowledge")


def _folds() -> list[Path]:
    return [TUNE, *FLOORS]


def _target(path: Path, measure: str, locale: str) -> float:
    return FLOORS[path][measure][locale] if path in FLOORS else TARGET


def _load(path: Path) -> dict[str, Items]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(raw, dict)
    return raw


def _report(name: str, hits: int, total: int, misses: list[str]) -> str:
    lines = [f"{name}: {hits}/{total} = {hits / total:.1%}"] + [f"  miss: {miss}" for miss in misses]
    return "\n".join(lines)


def test_the_tuning_fold_is_big_enough_and_varied() -> None:
    data = _load(TUNE)
    for locale in LOCALES:
        items = [item for item in data["in_domain"] if item["locale"] == locale]
        assert len(items) >= 90
        assert {item["category"] for item in items} <= CATEGORIES
        informal = [item for item in items if item["category"] != "plain"]
        assert len(informal) >= len(items) / 3
        assert len([item for item in data["out_of_domain"] if item["locale"] == locale]) >= 25


@pytest.mark.parametrize("path", _folds(), ids=lambda path: path.stem)
@pytest.mark.parametrize("locale", LOCALES)
def test_in_domain_top1_accuracy(index: FaqIndex, path: Path, locale: str) -> None:
    items = [item for item in _load(path)["in_domain"] if item["locale"] == locale]
    assert items
    assert all(item["id"] in index.topics for item in items)
    misses: list[str] = []
    for item in items:
        result = index.search(item["q"])
        if result.answer_id != item["id"]:
            ranked = ", ".join(f"{m.topic_id} {m.score:.2f}" for m in result.matches)
            misses.append(
                f"{item['q']!r} ({item.get('category', '-')}): expected {item['id']}, "
                f"answered {result.answer_id}{' (off-topic)' if result.off_topic else ''} [{ranked}]"
            )
    hits = len(items) - len(misses)
    report = _report(f"{path.stem} {locale} in-domain top-1", hits, len(items), misses)
    print(report)
    assert hits / len(items) >= _target(path, "top-1", locale), report


@pytest.mark.parametrize("path", _folds(), ids=lambda path: path.stem)
@pytest.mark.parametrize("locale", LOCALES)
def test_out_of_domain_refusal(index: FaqIndex, path: Path, locale: str) -> None:
    items = [item for item in _load(path)["out_of_domain"] if item["locale"] == locale]
    assert items
    misses = [f"{item['q']!r}: answered {answer}" for item in items if (answer := index.search(item["q"]).answer_id)]
    refused = len(items) - len(misses)
    report = _report(f"{path.stem} {locale} out-of-domain refusal", refused, len(items), misses)
    print(report)
    assert refused / len(items) >= _target(path, "refusal", locale), report


def _faq(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("UNLOCKBOT_")}
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "bot", "faq", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=tmp_path,
        env=env,
        timeout=60,
        check=False,
    )


def test_faq_stdin_answers_a_mixed_file_in_one_process(tmp_path: Path) -> None:
    questions = ["我的数据安全吗?", "is it my network?", "", "明天上海天气怎么样", "how do I reset my password"]
    done = _faq(tmp_path, "--json", "--stdin", stdin="\n".join(questions) + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["query"] for line in lines] == questions
    assert [line["locale"] for line in lines] == ["zh-CN", "en", "en", "zh-CN", "en"]
    assert [line["answer_id"] for line in lines] == ["data-safety", "network", None, None, "wrong-password"]
    assert [line["off_topic"] for line in lines] == [False, False, True, True, False]
    for line in lines:
        assert list(line) == ["query", "locale", "answer_id", "off_topic", "matches"]
        assert all(set(match) == {"id", "score", "title"} for match in line["matches"])
    assert lines[0]["matches"][0]["title"] == "锁定后我的数据安全吗？"
    assert not list(tmp_path.iterdir()), "faq must not create a database or any file in the working directory"


def test_faq_prints_the_answer_or_the_closest_titles(tmp_path: Path) -> None:
    def faq(*args: str) -> str:
        done = _faq(tmp_path, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "VPN" in faq("is it my network?")
    assert "备份" in faq("数据会丢吗", "--lang", "zh")
    # How to do other work in the CRM is not the bot's to answer: it says what it is for, offering no topics.
    assert faq("how do I merge two contacts in the CRM").startswith("I can't help with that")
