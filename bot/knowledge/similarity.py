"""How closely a message resembles each example question, letter by letter: the FAQ's character n-gram layer.

Words are what the BM25 layer matches; this layer matches pieces of words, so it still sees "pasword" in
"password", "锁丁" next to "锁定" and a listed question typed with one slip. Each text becomes a TF-IDF
weighted vector of character n-grams (three letters of each English word, with its edges marked;
single Chinese characters and pairs of them), and a message's similarity to a text is the cosine of the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from bot.knowledge.analysis import STOP_ZH, english_words
from bot.language import HAN_RUN

Features = dict[str, float]
# A gram in more than this share of the example texts is too common to tell examples apart.
COMMON_SHARE = 0.05


def character_ngrams(text: str) -> Features:
    """The character n-grams of ``text`` (normalised and with shorthand spelled out) and how often each occurs."""
    counts: Features = {}

    def add(gram: str) -> None:
        counts[gram] = counts.get(gram, 0.0) + 1.0

    start = 0
    for run in HAN_RUN.finditer(text):
        _latin(text[start : run.start()], add)
        han = run.group()
        for position, character in enumerate(han):
            if character not in STOP_ZH:
                add(character)
            if position + 1 < len(han):
                add(han[position : position + 2])
        start = run.end()
    _latin(text[start:], add)
    return counts


def _latin(text: str, add: Callable[[str], None]) -> None:
    # Function words count too, weighed down by how common they are: "can't get in" is all function words.
    for word in english_words(text):
        if len(word) < 2:
            continue
        marked = f"<{word}>"
        for position in range(len(marked) - 2):
            add(marked[position : position + 3])


class NgramIndex:
    """The example texts as unit vectors, searchable by cosine similarity through an inverted list.

    Grams found in more than ``COMMON_SHARE`` of the texts ("the", "<lo", "锁") are left out, like stop words:
    they say little about which example a message resembles, and they would make every look-up walk most of
    the index.
    """

    def __init__(self, texts: Sequence[str], owners: Sequence[int]) -> None:
        """``texts`` are the example texts, ``owners[i]`` the number of the topic ``texts[i]`` belongs to."""
        grams = [character_ngrams(text) for text in texts]
        frequency: dict[str, int] = {}
        for features in grams:
            for gram in features:
                frequency[gram] = frequency.get(gram, 0) + 1
        count = len(texts)
        self._idf = {
            gram: math.log((1 + count) / (1 + n)) + 1.0 for gram, n in frequency.items() if n <= COMMON_SHARE * count
        }
        self._common = frozenset(gram for gram in frequency if gram not in self._idf)
        # Grams no example uses weigh like the rarest known ones: they still make the message less similar.
        self._rare = max(self._idf.values(), default=1.0)
        self._owners = list(owners)
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for number, features in enumerate(grams):
            for gram, weight in self._weigh(features).items():
                self._postings.setdefault(gram, []).append((number, weight))

    def _weigh(self, features: Mapping[str, float]) -> Features:
        vector = {
            gram: (1.0 + math.log(n)) * self._idf.get(gram, self._rare)
            for gram, n in features.items()
            if gram not in self._common
        }
        norm = math.sqrt(sum(weight * weight for weight in vector.values()))
        return {gram: weight / norm for gram, weight in vector.items()} if norm else {}

    def best_per_owner(self, text: str, owners: int) -> list[float]:
        """For each of ``owners`` topics, the highest similarity between ``text`` and one of its texts."""
        scores: dict[int, float] = {}
        for gram, weight in self._weigh(character_ngrams(text)).items():
            for number, other in self._postings.get(gram, ()):
                scores[number] = scores.get(number, 0.0) + weight * other
        best = [0.0] * owners
        for number, score in scores.items():
            owner = self._owners[number]
            if score > best[owner]:
                best[owner] = score
        return best
