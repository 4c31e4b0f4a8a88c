"""Choosing the FAQ confidence rule's numbers by cross-validation on our own questions.

    .venv/bin/python -m bot.knowledge.calibration [--tune tests/data/faq_tune.yaml ...] [--folds 10]

The questions a rule is judged on:

- **the topics' example questions and the off-topic examples** (``knowledge/off_topic.yaml``), in ``--folds``
  folds: each fold is read by an index built without that fold's lines (and a spell checker that has never
  seen them), so no question is ranked against itself, which would make every rule look perfect;
- **the tuning folds** (``tests/data/faq_tune.yaml`` and the first six held-out folds, ``faq_holdout.yaml``
  to ``faq_holdout6.yaml``, which have been looked at and so are tuning data now):
  in-domain questions with their topic, including typos, shorthand and mixed language, and off-topic lines;
  read by the full index, with its learned layer trained without that fold (its questions are in
  ``knowledge/training/``).

A rule is scored by the product's own targets: the weakest of its top-1 accuracy on in-domain questions
(the right topic, answered with confidence) and its refusal of off-topic lines, per language, plus a tenth
of their mean. Among rules equally good at that, fewer real questions called off-topic (the person would be
told the bot cannot help), fewer wrong answers and more off-topic lines recognised as such break the tie.

The numbers are found by coordinate search over a small grid, starting from the current defaults. How well
that choice generalises is measured the honest way: the tuning items are split in five, the search is run on
four parts and scored on the fifth, in turn. The held-out fold (``tests/data/faq_holdout8.yaml``) is never
read here. Paste the chosen numbers into ``ConfidenceRule``'s defaults. The learned layer's numbers (``learned_*``) are
not in the grid: they were chosen by nested leave-one-fold-out over the seven tuning folds.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.knowledge.analysis import load_roles, load_synonyms
from bot.knowledge.intent import load_off_topic
from bot.knowledge.learned import load_training
from bot.knowledge.reasons import TextList
from bot.knowledge.retrieval import LOCALES, ConfidenceRule, FaqIndex, Reading
from bot.knowledge.topics import Topic, load_topics
from bot.knowledge.wording import Shorthand

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
# The tuning questions: the first fold written for tuning, and the first six held-out folds, which have been
# looked at since and so tune too. The seventh held-out fold is never read here.
TUNING_FOLDS = (DATA / "faq_tune.yaml", *(DATA / f"faq_holdout{n}.yaml" for n in ("", "2", "3", "4", "5", "6")))
HELD_OUT = DATA / "faq_holdout8.yaml"

# The values each number may take. The coordinate search tries them one number at a time.
GRID: Mapping[str, tuple[float, ...]] = {
    "char_weight": (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
    "coverage": (0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8),
    "core_coverage": (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5),
    "unknown": (1.0, 1.5, 2.0, 2.5, 3.0, 4.0),
    "known_floor": (0.25, 0.5, 1.0, 1.5),
    "known_ceiling": (1.0, 1.5, 2.0, 3.0, 10.0),
    "short_word": (0.25, 0.5, 1.0),
    "anchor_specificity": (0.0, 0.25, 0.5, 0.75, 1.0),
    "margin": (1.0, 1.05, 1.1, 1.2, 1.3, 1.5),
    "echo": (0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.01),
    "in_domain": (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5),
    "char_floor": (0.3, 0.4, 0.5, 0.6, 0.7, 1.01),
    "likeness_weight": (0.0, 0.25, 0.5, 0.75, 1.0, 1.5),
    "off_topic_lead": (0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 100.0),
    "off_topic_floor": (0.1, 0.2, 0.3, 0.4, 0.5),
}


@dataclass(frozen=True, slots=True)
class Item:
    """One calibration question, already read: where it came from, its language and its topic (or off-topic)."""

    reading: Reading
    locale: str
    expected: int | None
    source: str
    category: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a rule did on a set of items, per language."""

    correct: dict[str, float]
    wrong: dict[str, float]
    off_topic_in_domain: dict[str, float]
    refused: dict[str, float]
    off_topic_recognised: dict[str, float]
    out_of_domain: dict[str, int]

    @property
    def score(self) -> float:
        # The targets, as the product states them: top-1 and refusal, per language. The weakest counts.
        targets = [*self.correct.values(), *(self.refused[locale] for locale in self.refused if self.has_ood(locale))]
        weakest, mean = min(targets), sum(targets) / len(targets)
        # Then, among rules equally good at that: fewer real questions told "I can't help", fewer wrong
        # answers, more off-topic lines recognised as such.
        off = sum(self.off_topic_in_domain.values()) / len(self.off_topic_in_domain)
        wrong = sum(self.wrong.values()) / len(self.wrong)
        recognised = sum(self.off_topic_recognised.values()) / len(self.off_topic_recognised)
        return weakest + 0.1 * mean - 0.5 * off - 0.05 * wrong + 0.05 * recognised

    def has_ood(self, locale: str) -> bool:
        return self.out_of_domain.get(locale, 0) > 0


def evaluate(rule: ConfidenceRule, items: Iterable[Item]) -> Outcome:
    """The shares that make up a rule's score on ``items``."""
    return tally((rule, item) for item in items)


def tally(judged: Iterable[tuple[ConfidenceRule, Item]]) -> Outcome:
    """The shares, each item judged by the rule paired with it."""
    counts: dict[str, dict[str, int]] = {}
    for rule, item in judged:
        count = counts.setdefault(item.locale, dict.fromkeys(("in", "ood", "ok", "bad", "off_in", "ref", "off"), 0))
        verdict = rule.judge(item.reading)
        if item.expected is None:
            count["ood"] += 1
            count["ref"] += verdict.answer is None
            count["off"] += verdict.answer is None and verdict.off_topic
        else:
            count["in"] += 1
            count["ok"] += verdict.answer == item.expected
            count["bad"] += verdict.answer is not None and verdict.answer != item.expected
            count["off_in"] += verdict.answer is None and verdict.off_topic

    def share(key: str, of: str) -> dict[str, float]:
        return {locale: count[key] / count[of] if count[of] else 0.0 for locale, count in counts.items()}

    return Outcome(
        share("ok", "in"),
        share("bad", "in"),
        share("off_in", "in"),
        share("ref", "ood"),
        share("off", "ood"),
        {locale: count["ood"] for locale, count in counts.items()},
    )


def search(items: Sequence[Item], start: ConfidenceRule, rounds: int = 4) -> ConfidenceRule:
    """Coordinate search: each number in turn takes the grid value that scores best, until nothing improves."""
    best, best_score = start, evaluate(start, items).score
    for _ in range(rounds):
        improved = False
        for name, values in GRID.items():
            for value in values:
                candidate = dataclasses.replace(best, **{name: value})
                score = evaluate(candidate, items).score
                if score > best_score + 1e-9:
                    best, best_score, improved = candidate, score, True
        if not improved:
            break
    return best


# --- reading the questions --------------------------------------------------------------------------------------


def _without(topics: Mapping[str, Topic], held_out: set[tuple[str, str, str]]) -> dict[str, Topic]:
    """The topics with the held-out (topic, locale, question) triples taken out of their example questions."""
    result: dict[str, Topic] = {}
    for topic_id, topic in topics.items():
        kept = {
            locale: [q for q in topic.questions[locale] if (topic_id, locale, q) not in held_out] for locale in LOCALES
        }
        questions = TextList.model_validate(kept)
        result[topic_id] = topic.model_copy(update={"questions": questions})
    return result


def listed_items(knowledge: Path, folds: int, rule: ConfidenceRule) -> list[Item]:
    """The topics' example questions and the off-topic examples, each read by an index built without its fold."""
    topics = load_topics(knowledge / "topics")
    synonyms = load_synonyms(knowledge / "synonyms.yaml")
    shorthand = Shorthand.load(knowledge / "shorthand.yaml")
    roles = load_roles(knowledge / "synonyms.yaml", synonyms)
    off_topic = load_off_topic(knowledge / "off_topic.yaml")
    ids = list(topics)
    triples = [(t, locale, q) for t in ids for locale in LOCALES for q in topics[t].questions[locale]]
    triples += [("", locale, q) for locale in LOCALES for q in off_topic.get(locale, ())]
    items: list[Item] = []
    for fold in range(folds):
        held_out = {triple for number, triple in enumerate(triples) if number % folds == fold}
        kept = {locale: [q for q in off_topic.get(locale, ()) if ("", locale, q) not in held_out] for locale in LOCALES}
        index = FaqIndex.build(_without(topics, held_out), synonyms, rule, shorthand, roles, kept)
        for topic_id, locale, question in sorted(held_out):
            if topic_id:
                items.append(Item(index.read(question), locale, ids.index(topic_id), "listed", "plain"))
            else:
                items.append(Item(index.read(question), locale, None, "listed", "ood"))
    return items


def _index_without(knowledge: Path, rule: ConfidenceRule, path: Path) -> FaqIndex:
    """The full index, but with the learned layer trained without the questions of the tuning fold ``path``
    (``knowledge/training/`` holds the tuning folds' questions), so that no fold is read by a layer that
    learned its answers."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    fold = {entry["q"] for key in ("in_domain", "out_of_domain") for entry in raw.get(key) or []}
    topics = load_topics(knowledge / "topics")
    synonyms = load_synonyms(knowledge / "synonyms.yaml")
    training = [(q, topic_id) for q, topic_id in load_training(knowledge / "training", set(topics)) if q not in fold]
    return FaqIndex.build(
        topics,
        synonyms,
        rule,
        Shorthand.load(knowledge / "shorthand.yaml"),
        load_roles(knowledge / "synonyms.yaml", synonyms),
        load_off_topic(knowledge / "off_topic.yaml"),
        training,
    )


def tune_items(index: FaqIndex, path: Path) -> list[Item]:
    """The tuning fold's questions, read by ``index`` (one whose learned layer never saw them)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    ids = list(index.topics)
    items = [
        Item(index.read(entry["q"]), entry["locale"], ids.index(entry["id"]), "tune", entry.get("category", "plain"))
        for entry in raw["in_domain"]
    ]
    items += [
        Item(index.read(entry["q"]), entry["locale"], None, "tune", "ood") for entry in raw.get("out_of_domain", [])
    ]
    return items


# --- report -----------------------------------------------------------------------------------------------------


def _split(items: Sequence[Item], parts: int) -> list[list[Item]]:
    return [[item for number, item in enumerate(items) if number % parts == part] for part in range(parts)]


def nested_estimate(
    listed: Sequence[Item], tune: Sequence[Item], start: ConfidenceRule, parts: int = 5
) -> tuple[Outcome, list[ConfidenceRule]]:
    """Search on all but one part of the tuning items (plus every listed question), score on that part."""
    chunks = _split(tune, parts)
    judged: list[tuple[ConfidenceRule, Item]] = []
    rules: list[ConfidenceRule] = []
    for number, part in enumerate(chunks):
        others = [item for n, chunk in enumerate(chunks) if n != number for item in chunk]
        rule = search([*listed, *others], start)
        rules.append(rule)
        judged += [(rule, item) for item in part]
    return tally(judged), rules


def describe(name: str, outcome: Outcome, out: Callable[[str], object]) -> None:
    for locale in sorted(outcome.correct):
        out(
            f"  {name:28} {locale:5}  right {outcome.correct[locale]:6.1%}  wrong {outcome.wrong[locale]:5.1%}"
            f"  in-domain called off-topic {outcome.off_topic_in_domain[locale]:5.1%}"
            f"  off-topic refused {outcome.refused[locale]:6.1%}"
            f" (recognised {outcome.off_topic_recognised[locale]:6.1%})"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--knowledge", type=Path, default=ROOT / "knowledge")
    parser.add_argument("--tune", type=Path, action="append", help="a tuning file (default: TUNING_FOLDS)")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--no-estimate", action="store_true", help="skip the nested estimate (faster)")
    args = parser.parse_args(argv)
    paths: list[Path] = args.tune or list(TUNING_FOLDS)
    if HELD_OUT.name in {path.name for path in paths}:
        print("calibration: the held-out fold is never used to choose the rule", file=sys.stderr)
        return 2

    current = ConfidenceRule()
    listed = listed_items(args.knowledge, args.folds, current)
    tune = [item for path in paths for item in tune_items(_index_without(args.knowledge, current, path), path)]
    print(f"{len(listed)} listed questions in {args.folds} folds, {len(tune)} tuning items")
    describe("current rule, listed", evaluate(current, listed), print)
    describe("current rule, tuning fold", evaluate(current, tune), print)

    if not args.no_estimate:
        estimate, rules = nested_estimate(listed, tune, current)
        describe("chosen without the part", estimate, print)
        for rule in rules:
            print(f"    {rule}")

    chosen = search([*listed, *tune], current)
    describe("chosen rule, listed", evaluate(chosen, listed), print)
    describe("chosen rule, tuning fold", evaluate(chosen, tune), print)
    print(f"chosen: {chosen}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
