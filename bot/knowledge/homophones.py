"""Chinese typed through a pinyin keyboard: the right sound, the wrong character.

Most Chinese is typed as pinyin and picked from a list, so the commonest slip is a character that sounds
like the one meant: 帐号 for 账号, 被所了 for 被锁了, 登陆 for 登录, 密马 for 密码, 申情 for 申请. The
characters are all real and common, so a spelling check of unknown words never sees them.

``Homophones`` knows the words the FAQ cares about (keywords and synonyms) and, for each of their
characters, the characters that share a reading with it (tones ignored, as a pinyin keyboard ignores them).
A stretch of a question that is not a word the FAQ knows, but is one of those words with exactly one
character swapped for a homophone, is read as that word. One character in a two-character word is the most
it changes, so a real word the FAQ does not know and that merely sounds alike in part (事件 and 时间 differ
in two characters) is left alone.

The readings come from pypinyin's table of characters. Only that table is read (not the library's phrase
dictionaries, which take a third of a second to load), once, when the index is built.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

WORD_LENGTHS = (2, 3, 4)


# Pinyin's tone marks (and ü) as the plain letters a keyboard takes: lǜ -> lu, zhòng -> zhong.
_PLAIN_LETTERS = str.maketrans(
    "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜüńňǹḿ",
    "aaaaeeeeiiiioooouuuuuuuuunnnm",
)


@cache
def readings() -> dict[str, str]:
    """Every character pypinyin knows, with its usual reading (the first listed), toneless; empty when the
    table cannot be found. Rare readings are left out: 坏 is also read pī, but nobody typing "pi" picks it."""
    spec = importlib.util.find_spec("pypinyin")
    locations = spec.submodule_search_locations if spec is not None else None
    table = Path(next(iter(locations))) / "pinyin_dict.json" if locations else None
    if table is None or not table.is_file():
        log.warning("pypinyin's character table was not found: wrong-character typos are not corrected")
        return {}
    raw: dict[str, str] = json.loads(table.read_text(encoding="utf-8"))
    return {chr(int(code)): value.partition(",")[0].translate(_PLAIN_LETTERS) for code, value in raw.items()}


class Homophones:
    """Reads a stretch that sounds like one of ``words`` but is written with one wrong character as that word."""

    def __init__(
        self,
        words: Iterable[str],
        known: Collection[str],
        kept: Collection[str] = (),
        frequency: Mapping[str, int] | None = None,
    ) -> None:
        """``known``: stretches read as written (words the FAQ uses); ``kept``: characters never taken for a
        slip (the commonest function characters: 是 in 是用 is not a slip for 试用); ``frequency``: how common
        words are in general writing (jieba's dictionary): a common word is not a slip for a rarer one
        (使用 is not a slip for 试用, but 检察 is one for 检查)."""
        table = readings()
        chosen = {word for word in words if len(word) in WORD_LENGTHS and all(c in table for c in word)}
        self._known = known
        self._kept = kept
        self._frequency = frequency or {}
        # The characters that sound like each character of a chosen word, and the words by their shape
        # with one character blanked ("?号" -> 账号, 帐号...).
        wanted = {table[c] for word in chosen for c in word}
        by_reading: dict[str, set[str]] = {}
        for character, reading in table.items():
            if reading in wanted:
                by_reading.setdefault(reading, set()).add(character)
        self._alike = {c: frozenset(by_reading[table[c]]) for word in chosen for c in word}
        self._shapes: dict[str, set[str]] = {}
        for word in chosen:
            for position in range(len(word)):
                self._shapes.setdefault(word[:position] + "?" + word[position + 1 :], set()).add(word)

    def correct(self, run: str, cuts: Collection[int]) -> tuple[str, list[tuple[int, int]]]:
        """``run`` (Chinese characters only) with sound-alike slips replaced, and the spans replaced.

        ``cuts`` are where the run's words begin and end as written: a slip is a whole word or several, never
        the end of one word and the start of the next (确认数据 holds no 人数).
        """
        if not self._shapes:
            return run, []
        out = list(run)
        spans: list[tuple[int, int]] = []
        start = 0
        while start < len(run):
            found = self._at(run, start, cuts) if start in cuts else None
            if found is None:
                start += 1
                continue
            word, end = found
            out[start:end] = word
            spans.append((start, end))
            start = end
        return "".join(out), spans

    def _at(self, run: str, start: int, cuts: Collection[int]) -> tuple[str, int] | None:
        for length in sorted(WORD_LENGTHS, reverse=True):
            piece = run[start : start + length]
            if len(piece) < length or start + length not in cuts or piece in self._known:
                continue
            meant = {
                word
                for position, character in enumerate(piece)
                for word in self._shapes.get(piece[:position] + "?" + piece[position + 1 :], ())
                if word != piece and character not in self._kept and character in self._alike.get(word[position], ())
            }
            if len(meant) == 1:
                word = meant.pop()
                if self._frequency.get(piece, 0) <= self._frequency.get(word, 0):
                    return word, start + length
        return None


def spelled_in_pinyin(words: Iterable[str], meaning: Callable[[str], str]) -> dict[str, str]:
    """Each word by its pinyin, without tones or spaces (解锁 -> ``jiesuo``), as people type it in an English
    sentence ("my account got suoding, need jiesuo"). A spelling shared by words of different ``meaning`` is
    left out; of words that mean the same (账号, 帐号), any will do."""
    table = readings()
    found: dict[str, dict[str, str]] = {}
    for word in words:
        # A word with the particle 了 is an inflected form nobody spells out, and its spelling may be English
        # ("pile" for 批了).
        if len(word) >= 2 and "了" not in word and all(c in table for c in word):
            found.setdefault("".join(table[c] for c in word), {})[meaning(word)] = word
    return {spelling: next(iter(meant.values())) for spelling, meant in found.items() if len(meant) == 1}
