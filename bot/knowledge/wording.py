"""Reading a message the way it was meant: chat shorthand spelled out, slips of the keyboard corrected.

``Shorthand`` applies ``knowledge/shorthand.yaml``: whole English words and phrases ("y am i locked" reads
"why am i locked", and words borrowed from other languages read in English: "no puedo entrar" reads "cannot
get in") and pieces of Chinese ("啥时候" reads "什么时候"). ``Speller`` corrects an English word the bot does
not know to the nearest word it does know, when that word is near enough to be a typo. Both serve the FAQ
look-up and typed commands alike. Chinese typos (a wrong character of the same sound) are corrected where
Chinese is cut into words, in ``bot.knowledge.analysis``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path

from rapidfuzz import process
from rapidfuzz.distance import OSA

from bot.errors import ConfigError
from bot.knowledge.files import read_yaml
from bot.language import HAN, LOCALE_EN, LOCALE_ZH

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# One letter changed into another often makes another real word ("date" and "data", "quote" and "quota",
# "Apple" and "apply"), so below eight letters only a missing, an extra or two swapped letters are corrected
# ("dta", "lockd", "normall", "unlcok"). From eight letters on, one edit of any kind ("maintenence"); from
# nine, two ("maintainance").
_MIN_LENGTH = 3
# Nor is a word read as one of fewer letters: two-letter words are mostly pieces ("fa" of "2fa") or function
# words, and a real word one letter longer ("far", "atm") is far likelier than a slip of one.
_ANY_EDIT_FROM = 8
_TWO_EDITS_FROM = 9
_CACHE_LIMIT = 4096


def normalise(text: str) -> str:
    """Full-width forms folded to plain ones, case and accents dropped, as both the FAQ and the commands read text.

    Accents go because English lines borrow words from other languages ("contraseña", "cuándo") and people
    type them with or without; a word cut in two at "ñ" would be two unknown words.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    if text.isascii():
        return text
    stripped = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped)


class Shorthand:
    """Spelled-out forms of chat shorthand: whole English words, and Chinese pieces wherever they occur."""

    def __init__(self, english: Mapping[str, str], chinese: Mapping[str, str]) -> None:
        words = {normalise(k): normalise(v) for k, v in english.items()}
        self._english = {k: v for k, v in words.items() if " " not in k}
        # Phrases of several words ("no puedo") are replaced before single words, the longest first.
        phrases = sorted((k for k in words if " " in k), key=len, reverse=True)
        self._phrases = {" ".join(k.split()): words[k] for k in phrases}
        self._phrase_pattern = (
            re.compile(
                r"(?<![a-z0-9'])(?:"
                + "|".join(re.escape(k).replace(r"\ ", r"\s+") for k in self._phrases)
                + r")(?![a-z0-9'])"
            )
            if phrases
            else None
        )
        self._chinese = {normalise(k): normalise(v) for k, v in chinese.items()}
        # The longest piece first, so that "啥时候" is replaced whole before "啥时" could be.
        pieces = sorted(self._chinese, key=len, reverse=True)
        self._chinese_pattern = re.compile("|".join(map(re.escape, pieces))) if pieces else None

    @classmethod
    def none(cls) -> Shorthand:
        return cls({}, {})

    @classmethod
    def load(cls, path: Path) -> Shorthand:
        """Read ``shorthand.yaml``; a missing file means no shorthand."""
        if not path.exists():
            return cls.none()
        raw = read_yaml(path)
        if not isinstance(raw, dict) or set(raw) - {LOCALE_EN, LOCALE_ZH}:
            raise ConfigError(f"{path}: expected `{LOCALE_EN}:` and `{LOCALE_ZH}:` mappings of shorthand to words")
        tables: dict[str, dict[str, str]] = {}
        for locale in (LOCALE_EN, LOCALE_ZH):
            entries = raw.get(locale) or {}
            if not isinstance(entries, dict):
                raise ConfigError(f"{path}: {locale}: expected a mapping of shorthand to words, got {entries!r}")
            table: dict[str, str] = {}
            for short, long in entries.items():
                short_text, long_text = str(short).strip(), str(long).strip() if long is not None else ""
                if not short_text or not long_text:
                    raise ConfigError(f"{path}: {locale}: {short!r}: both sides must be non-empty text")
                if locale == LOCALE_EN and not all(_WORD.fullmatch(w) for w in normalise(short_text).split()):
                    raise ConfigError(f"{path}: {locale}: {short!r}: must be one word or a few words")
                if locale == LOCALE_ZH and (len(short_text) < 2 or not HAN.search(short_text)):
                    raise ConfigError(f"{path}: {locale}: {short!r}: must be Chinese, at least two characters")
                table[short_text] = long_text
            tables[locale] = table
        return cls(tables[LOCALE_EN], tables[LOCALE_ZH])

    def expand(self, text: str) -> str:
        """``text`` (already normalised) with every listed shorthand spelled out."""
        if self._chinese_pattern is not None:
            text = self._chinese_pattern.sub(lambda m: self._chinese[m.group()], text)
        if self._phrase_pattern is not None:
            text = self._phrase_pattern.sub(lambda m: self._phrases[" ".join(m.group().split())], text)
        if self._english:
            text = _WORD.sub(lambda m: self._english.get(m.group(), m.group()), text)
        return text

    @property
    def words(self) -> frozenset[str]:
        """Every English word the spelled-out forms use: a typo may be corrected to one of them."""
        spelled = [*self._english.values(), *self._phrases.values()]
        return frozenset(word for long in spelled for word in _WORD.findall(long))


class Speller:
    """Corrects a misspelt English word to the nearest word of a known vocabulary, or leaves it alone.

    The nearest word must share the first letter (people rarely mistype it, and it keeps unrelated words
    apart), and be within the edits the word's length allows; among equally near words the more common one
    in the vocabulary wins. A word in the vocabulary is never changed.
    """

    def __init__(self, words: Iterable[str]) -> None:
        counts: dict[str, int] = {}
        for word in words:
            word = normalise(word)
            if word.isalpha():
                counts[word] = counts.get(word, 0) + 1
        self._counts = counts
        self._by_initial: dict[str, list[str]] = {}
        for word in sorted(counts):
            self._by_initial.setdefault(word[0], []).append(word)
        self._cache: dict[str, str | None] = {}
        self._near_cache: dict[str, list[str]] = {}

    def __contains__(self, word: str) -> bool:
        return word in self._counts

    def correct(self, word: str) -> str | None:
        """The known word ``word`` was meant to be, or ``None`` when it is known already or nothing is near."""
        if word in self._counts or len(word) < _MIN_LENGTH or not word.isalpha():
            return None
        if word in self._cache:
            return self._cache[word]
        found = self._nearest(word)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[word] = found
        return found

    def within_one_edit(self, word: str) -> list[str]:
        """The known words one edit of any kind away from ``word`` (same first letter), nearest use first.

        For a slip that makes another real-looking word ("sigh" for "sign"): too many candidates to pick one
        alone, so the caller chooses by what stands beside it.
        """
        if word in self._counts or len(word) < _MIN_LENGTH or not word.isalpha():
            return []
        if word in self._near_cache:
            return self._near_cache[word]
        choices = self._by_initial.get(word[0], [])
        near = process.extract(word, choices, scorer=OSA.distance, score_cutoff=1, limit=None)
        found = [
            str(item[0])
            for item in sorted(near, key=lambda item: (-self._counts[item[0]], item[0]))
            if len(item[0]) >= _MIN_LENGTH
        ]
        if len(self._near_cache) >= _CACHE_LIMIT:
            self._near_cache.clear()
        self._near_cache[word] = found
        return found

    def _nearest(self, word: str) -> str | None:
        edits = 2 if len(word) >= _TWO_EDITS_FROM else 1
        choices = self._by_initial.get(word[0], [])
        near = process.extract(word, choices, scorer=OSA.distance, score_cutoff=edits, limit=None)
        near = [item for item in near if len(item[0]) >= _MIN_LENGTH]
        if len(word) < _ANY_EDIT_FROM:
            near = [
                item
                for item in near
                if _swapped(word, item[0]) or _missing_one(word, item[0]) or _missing_one(item[0], word)
            ]
        if not near:
            return None
        best = min(near, key=lambda item: (item[1], -self._counts[item[0]], item[0]))
        return str(best[0])


def _swapped(word: str, other: str) -> bool:
    """Whether ``other`` is ``word`` with two neighbouring letters swapped back."""
    return len(other) == len(word) and sorted(other) == sorted(word) and other != word


def _missing_one(word: str, other: str) -> bool:
    """Whether ``word`` is ``other`` with one letter left out."""
    return len(other) == len(word) + 1 and any(other[:i] + other[i + 1 :] == word for i in range(len(other)))
