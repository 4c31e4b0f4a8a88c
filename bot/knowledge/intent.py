"""The FAQ's example layer: which topic's examples, or which off-topic example, a question resembles as a whole.

BM25 (``bot.knowledge.retrieval``) asks which topic *uses* a question's words; this layer asks which listed
message a question is most like, word and letter together. Its examples are every topic's title and example
questions, plus the off-topic messages of ``knowledge/off_topic.yaml`` as one more class, so that "how do I
export a report from the CRM" is seen to be like other CRM how-tos rather than like the topic that happens to
share the word "report".

Each text becomes one sparse vector: the analyzer's index terms (words with synonyms merged, so "frozen" and
"locked" are one feature) and character n-grams (three to five letters inside each English word, its edges
marked; one to three Chinese characters), which carry word endings, compounds and slips. Each part is
TF-IDF weighted with a dampened count and scaled to a fixed length, and a class's score is the highest
cosine between the question and one of its examples. A varied class such as "off-topic" has no useful
centre, so the nearest example is what counts. It is built when the index is, needs no dependency, and a
look-up walks an inverted list of the rarer features only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bot.errors import ConfigError
from bot.knowledge.analysis import english_words
from bot.knowledge.files import read_yaml
from bot.language import HAN_RUN, LOCALE_EN, LOCALE_ZH

Vector = dict[str, float]

# How much the word part and the character part of a vector count (their squares sum to one).
WORD_SHARE = 0.8
CHARACTER_SHARE = math.sqrt(1 - WORD_SHARE**2)
# English n-grams of three to five letters inside a word (edges marked with < and >), Chinese of one to three.
LATIN_SIZES = (3, 4, 5)
HAN_SIZES = (1, 2, 3)
# A feature in more than this share of the examples ("<lo", "w:~lock") is left out of the look-up list.
COMMON_SHARE = 0.02


def character_grams(text: str) -> Vector:
    """The character n-grams of ``text`` (already normalised) and how often each occurs."""
    counts: Vector = {}

    def add(gram: str) -> None:
        counts[gram] = counts.get(gram, 0.0) + 1.0

    start = 0
    for run in HAN_RUN.finditer(text):
        _latin(text[start : run.start()], add)
        han = run.group()
        for size in HAN_SIZES:
            for position in range(len(han) - size + 1):
                add(han[position : position + size])
        start = run.end()
    _latin(text[start:], add)
    return counts


def _latin(text: str, add: Callable[[str], None]) -> None:
    for word in english_words(text):
        marked = f"<{word}>"
        for size in LATIN_SIZES:
            for position in range(len(marked) - size + 1):
                add(marked[position : position + size])


def load_off_topic(path: Path) -> dict[str, tuple[str, ...]]:
    """Read ``off_topic.yaml``: example messages per locale that are not the bot's to answer. Missing: none."""
    if not path.exists():
        return {}
    raw = read_yaml(path)
    if not isinstance(raw, dict) or set(raw) - {LOCALE_ZH, LOCALE_EN}:
        raise ConfigError(f"{path}: expected `{LOCALE_ZH}:` and `{LOCALE_EN}:`, each with a list of example messages")
    result: dict[str, tuple[str, ...]] = {}
    for locale in (LOCALE_ZH, LOCALE_EN):
        lines = raw.get(locale)
        if not isinstance(lines, list) or not lines:
            raise ConfigError(f"{path}: {locale}: expected a list of at least one example message")
        for number, line in enumerate(lines, start=1):
            if not isinstance(line, str) or not line.strip():
                raise ConfigError(f"{path}: {locale}: entry {number}: expected non-empty text, got {line!r}")
        result[locale] = tuple(lines)
    return result


def _unit(vector: Mapping[str, float], scale: float = 1.0) -> Vector:
    norm = math.sqrt(sum(weight * weight for weight in vector.values()))
    return {feature: scale * weight / norm for feature, weight in vector.items()} if norm else {}


class IntentModel:
    """A nearest-neighbour classifier over word and character features, built once from labelled texts.

    ``examples`` are ``(terms, text, label)``: a text's index terms, the text itself (normalised, shorthand
    spelled out) and its class number, below ``classes``.
    """

    def __init__(self, examples: Sequence[tuple[Sequence[str], str, int]], classes: int) -> None:
        raw = [(self._counts(terms, text), label) for terms, text, label in examples]
        count = len(raw)
        frequency: dict[str, int] = {}
        for vector, _ in raw:
            for feature in vector:
                frequency[feature] = frequency.get(feature, 0) + 1
        self._idf = {feature: math.log((1 + count) / (1 + n)) + 1.0 for feature, n in frequency.items()}
        # A feature no example has weighs like the rarest known ones: it makes a question resemble every class less.
        self._rare = math.log(1 + count) + 1.0
        self.classes = classes
        # Every example's own vector too, for its nearest neighbours: a class as varied as "off-topic" has no
        # useful centre. Features in more than COMMON_SHARE of the examples are left out of this list: they
        # tell neighbours apart little and would make a look-up walk most of it.
        self._labels = [label for _, label in raw]
        self._examples: dict[str, list[tuple[int, float]]] = {}
        for number, (vector, _) in enumerate(raw):
            for feature, weight in self._weigh(vector).items():
                if frequency[feature] <= max(COMMON_SHARE * count, 2):
                    self._examples.setdefault(feature, []).append((number, weight))

    @staticmethod
    def _counts(terms: Sequence[str], text: str) -> Vector:
        counts: Vector = {}
        for term in terms:
            counts["w:" + term] = counts.get("w:" + term, 0.0) + 1.0
        for gram, n in character_grams(text).items():
            counts["c:" + gram] = n
        return counts

    def _weigh(self, counts: Mapping[str, float]) -> Vector:
        words: Vector = {}
        grams: Vector = {}
        for feature, n in counts.items():
            weight = (1.0 + math.log(n)) * self._idf.get(feature, self._rare)
            if weight > 0:
                (words if feature.startswith("w:") else grams)[feature] = weight
        return {**_unit(words, WORD_SHARE), **_unit(grams, CHARACTER_SHARE)}

    def neighbours(self, terms: Sequence[str], text: str) -> list[float]:
        """For every class, the highest cosine between the question and one of its examples."""
        similarity: dict[int, float] = {}
        for feature, weight in self._weigh(self._counts(terms, text)).items():
            for number, other in self._examples.get(feature, ()):
                similarity[number] = similarity.get(number, 0.0) + weight * other
        best = [0.0] * self.classes
        for number, value in similarity.items():
            label = self._labels[number]
            if value > best[label]:
                best[label] = value
        return best
