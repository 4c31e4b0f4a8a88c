"""Cutting text in either language into the content words the FAQ index matches on.

Chinese is cut into words with jieba, English is lower-cased, stripped of function words and stemmed
(Snowball); a message that mixes both ("我的account被lock了") is cut run by run, each in its own way, so both
languages' vocabulary applies. The words of one synonym group (``knowledge/synonyms.yaml``) count as one word.

A question is read more forgivingly than a topic: chat shorthand is spelled out first (``Shorthand``), an
English word the index does not know is corrected to a near one it does (``Speller``), or, when one changed
letter makes it a phrase of the synonyms with its neighbour, to that word ("sigh in" -> "sign in"), and Chinese
characters jieba cannot place in a known word are tried against the known words that differ from them by one
character ("锁丁" -> "锁定", "密吗" -> "密码"), the usual result of picking the wrong character of the same sound.
Chinese typed in pinyin inside English is read as the word ("mima"), and an English word written straight
before Chinese is read with it: as the Chinese word it completes ("login不了" -> 登录不了) or the English phrase
it starts ("VPN密码" -> "vpn password"). ``Analyzer.read`` also gives the whole text as it was read, for the
character layers to compare.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from types import ModuleType
from typing import cast

import snowballstemmer

from bot.errors import ConfigError
from bot.knowledge.files import read_yaml
from bot.knowledge.homophones import Homophones, spelled_in_pinyin
from bot.knowledge.wording import Shorthand, Speller, normalise
from bot.language import HAN_RUN, is_han

with warnings.catch_warnings():
    # jieba 0.42 has invalid escape sequences in regular strings, which Python warns about while compiling it,
    # and may import the deprecated pkg_resources. Neither matters to us; keep both out of the log and of
    # test runs that turn warnings into errors.
    for category in (DeprecationWarning, PendingDeprecationWarning, SyntaxWarning, UserWarning):
        warnings.simplefilter("ignore", category)
    # jieba only uses pkg_resources to open its own data files, and importing it takes longer than all the
    # rest of jieba; when the import fails, jieba opens the same files directly. So it is hidden for this one
    # import (a None entry in sys.modules makes an import fail), unless something loaded it already.
    _hidden = "pkg_resources" not in sys.modules
    if _hidden:
        sys.modules["pkg_resources"] = cast(ModuleType, None)
    try:
        import jieba
    finally:
        if _hidden:
            del sys.modules["pkg_resources"]

log = logging.getLogger(__name__)

# jieba's dictionary is cut down to words at least this frequent, plus our own vocabulary (see below).
DICTIONARY_MIN_FREQUENCY = 30

_LATIN_WORD = re.compile(r"[a-z0-9]+")
_CONTRACTION = re.compile(r"(?<=[a-z])(n't|'s|'m|'re|'ve|'ll|'d)\b")
# A wrong character is looked for in pieces of this many characters: the length of most Chinese words.
_REPAIR_LENGTHS = (2, 3, 4)
_PINYIN_MIN_LETTERS = 4
# A word of at least this many letters, unknown and one letter from a word that makes a phrase with its
# neighbour, is read as that word ("sigh in").
_PHRASE_SLIP_MIN_LETTERS = 3
_LATIN_WORD = re.compile(r"(?<![a-z])[a-z]+(?![a-z])")
# An English word written straight before Chinese ("login不了", "unlock失败"), and up to four characters of it.
_LATIN_BEFORE_HAN = re.compile(r"(?<![a-z])([a-z]+)([\u4e00-\u9fff]{1,4})")


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that name no topic. Question words that do choose a topic ("why", "when", "为什么") are not here: the
# synonyms map them instead. The last lines are particles and function words that English chat lines borrow
# from Singapore English, Spanish, Hindi and Tagalog ("kena locked lah", "mi cuenta"); their content words are
# read in English through shorthand.yaml. What someone is in a hurry for (a demo, a proposal, 演示, 打电话)
# names no topic either.
STOP_EN = _word_set(
    """
    a about above against all am an and any are as at be because been before being below between both
    but by can could did do does doing don done during each either else ever every few for from further get
    gets getting got had has have having he her here hers herself him himself his how however i if in into is it
    its itself just let like lol me might mine more most must my myself need needs no nor not now of off ok on once
    only or other our ours ourselves out over own please pls plz really same shall she should so some such than
    thank thanks that the their theirs them themselves then there these they this those through thx to too today
    under until up us very was we were what whats where which while who whom whose will with would you
    your yours yourself yourselves hi hey hello right still also even actually anyone anything something someone
    since via s m re ve ll d t cannot okay yeah yes um uh oh hmm well sure maybe probably already never lot bit
    kind sort think know want wanted tell say said see give make made go going went thing things stuff way guys folks
    morning afternoon evening tonight yesterday tomorrow week weekend currently recently ago soon find take takes
    took help keep keeps kept ran come comes coming everything nothing anybody somebody able put happen seem seems
    anyway say says show shows showing shown display displays displayed new another one two three good
    asap urgent urgently immediately hurry here side part whole kind often usually always sometimes basically
    literally perhaps definitely certainly anymore later turn turned turning close closed open opened opening
    running runs puts makes lets allowed allows available finish finished become became whatever whenever
    somehow seemingly suddenly randomly completely totally lately exactly quite pretty rather less least ways
    guy person sorry excuse wondering curious helping st nd rd th till til
    demo demos presentation proposal deadline
    four five six seven eight nine ten
    lah leh lor meh liao hor sia ah eh aiyo aiyoh aiya alamak wah walao sian ya oye pues bueno vale hola gracias
    el la los las lo le de del mi mis tu un una que es esta este esto estoy estan con para por muy pero y ya
    yaar bhai ji hai hain ka ki ke ko se mera meri mere po naman ba
    """
)
STOP_ZH = _word_set(
    """
    的 了 吗 呢 吧 啊 呀 哦 嘛 么 哈 啦 嗯 我 我的 你 您 他 她 它 我们 你们 他们 是 在 就 都 也 还 又 和 与 及 跟 对 把
    给 让 这 那 这个 那个 这是 有 会 能 可以 要 想 啥 什么 怎么 怎么办 怎样 如何 哪 一下 一个 请 麻烦 帮 帮我 是不是
    会不会 能不能 可不可以 有没有 还是 或者 但是 可是 因为 所以 如果 就是 只是 已经 刚才 刚刚 现在 突然 到底 得 地
    着 过 被 个 下 上 里 中 去 来 说 该 咋 咋整 咋办 怎么样 为 从 到 等 很 太 挺 好 没 不 嘞 哟 诶 喂 谁 其他 自己
    不会 会儿 一直 今天 明天 昨天 早上 上午 下午 晚上 今晚 时候 事 事情 东西 知道 觉得 看 看看 告诉 问 请问 你好 谢谢
    一些 有些 这些 那些 之类 什么样 怎么弄 怎么搞 能否 是否 可否 需要 这次 这样 那样 一样 还有 然后 结果 而且 的话
    些 才 呗 哪些 多少 几 点 儿 啥子 咱 咱们 大概 可能 应该 真的 真 特别 非常 比较 一点 有点 才能 这种 那种 一声
    完全 那边 这边 哪个 最近 之前 以前 刚 老 总是 总 还能 能够 提示 显示 做 干 弄 搞 算 问题 情况 一下子 不能 不了
    啊啊 呃 唉 哎 哎呀 嘿 么么 不行 行 好的 好吧 是的 对的 对吧 好像 似乎 貌似 感觉 咋样 怎么样了 如何了 帮忙 一下下
    赶紧 马上 尽快 急 快点 赶快 好不好 周末 上周 下周 本周 这周 今年 去年 明年 月底 月初 年底
    急用 急需 求 求求 几个 出 这块 那块
    们 不要 尽量 少 多 更 内 好好 一切 出来 下来 上来 起来 过来 回来 平时 哪里 哪儿 这里 那里 打开 重新 是因为
    因此 为了 关于 对于 一般 通常 经常 常常 有时 有时候 偶尔 其实 确实 当然 还会 正在 稍后 等等 刚好 正好 直接
    另外 不过 只要 虽然 而是 不是 没有 本来 原来 好端端 整个 全部 所有 任何 每次 每天 最 更加 那么 这么 都是
    也是 要是 的时候 时 后来 之后再 行不行 请问一下 请教 想问 想问一下 问一下 一会儿 一会 方法 办法 啥的 什么的
    但 却 估计 预计 必须 演示 方案 打电话
    """
)
# English words that name no topic whatever their ending ("tells", "asked"): compared by stem.
_STOP_STEMS = _word_set(
    """
    problem issu matter question ask wonder guess look tri seem mean need want know tell say see show explain
    """
)

Synonyms = tuple[tuple[str, ...], ...]


def load_synonyms(path: Path) -> Synonyms:
    """Read ``synonyms.yaml``: groups of words that mean the same here. A missing file means no synonyms."""
    if not path.exists():
        return ()
    raw = read_yaml(path)
    groups = raw.get("groups") if isinstance(raw, dict) else None
    if not isinstance(groups, list):
        raise ConfigError(f"{path}: expected `groups:` with a list of word groups")
    seen: dict[str, int] = {}
    result: list[tuple[str, ...]] = []
    for number, group in enumerate(groups, start=1):
        if not isinstance(group, list) or len(group) < 2:
            raise ConfigError(f"{path}: group {number}: expected a list of at least two words, got {group!r}")
        words: list[str] = []
        for word in group:
            if not isinstance(word, str) or not word.strip():
                raise ConfigError(f"{path}: group {number}: every word must be non-empty text, got {word!r}")
            key = normalise(word).strip()
            if seen.get(key, number) != number:
                raise ConfigError(f"{path}: group {number}: {word!r} is already in group {seen[key]}")
            seen[key] = number
            words.append(key)
        result.append(tuple(words))
    return tuple(result)


@dataclass(frozen=True, slots=True)
class Roles:
    """Synonym groups with a part to play in deciding what is off-topic (``synonyms.yaml``, by first word).

    ``core``: being locked, unlocking, signing in: a question naming one is about the FAQ's subject.
    ``ours``: the CRM itself. ``elsewhere``: other systems the bot does not look after (mail, chat apps,
    printers); a question about one of them that does not name the CRM is not the bot's to answer.
    ``tasks``: work done in the CRM other than getting into it (assigning, exporting, converting, merging,
    creating records); asking how to do one, without naming a lock or sign-in, is a how-to the bot is not for.
    ``credentials``: what a person signs in with (password, code): "how do I create a new password" is about
    signing in, whatever its verb. ``office``: office matters that are not a system one signs in to (expenses,
    pay, the canteen, a keyboard); a message about one that names neither the CRM nor a lock, sign-in or
    password is not the bot's to answer, but "back from the gym and locked out" still is.
    """

    core: frozenset[str] = frozenset()
    ours: frozenset[str] = frozenset()
    elsewhere: frozenset[str] = frozenset()
    tasks: frozenset[str] = frozenset()
    credentials: frozenset[str] = frozenset()
    office: frozenset[str] = frozenset()


def load_roles(path: Path, synonyms: Synonyms) -> Roles:
    """The index terms of the groups ``synonyms.yaml`` lists under each role (``core:``, ``ours:``, ``tasks:``...)."""
    if not path.exists():
        return Roles()
    raw = read_yaml(path)
    heads = {group[0] for group in synonyms}
    terms: dict[str, frozenset[str]] = {}
    for role in ("core", "ours", "elsewhere", "tasks", "credentials", "office"):
        names = raw.get(role, []) if isinstance(raw, dict) else []
        if not isinstance(names, list):
            raise ConfigError(f"{path}: {role}: expected a list of group names, got {names!r}")
        found: set[str] = set()
        for name in names:
            key = normalise(str(name)).strip()
            if key not in heads:
                raise ConfigError(f"{path}: {role}: {name!r} is not the first word of any group")
            found.add(group_term(key))
        terms[role] = frozenset(found)
    return Roles(**terms)


def group_term(head: str) -> str:
    """The index term every word of the synonym group starting with ``head`` stands for."""
    return "~" + head


# --- segmentation -----------------------------------------------------------------------------------------------


def _common_words_dictionary() -> Path | None:
    """jieba's dictionary without its rare words, written once to the temporary folder beside jieba's own cache.

    The full dictionary takes about a second to load even from jieba's cache; its common words, with our
    vocabulary added on top, cut questions just as well and load in a fraction of that.
    """
    source = Path(jieba.__file__).with_name("dict.txt")
    try:
        stamp = f"{jieba.__version__}-{source.stat().st_size}-{DICTIONARY_MIN_FREQUENCY}"
        name = f"unlockbot-jieba-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}.txt"
        target = Path(tempfile.gettempdir()) / name
        if target.exists():
            return target
        kept: list[str] = []
        with source.open(encoding="utf-8") as lines:
            for line in lines:
                word, frequency, *_ = line.split(" ")
                if int(frequency) >= DICTIONARY_MIN_FREQUENCY:
                    kept.append(f"{word} {frequency}\n")
        scratch = target.with_name(f"{name}.{os.getpid()}")
        scratch.write_text("".join(kept), encoding="utf-8")
        scratch.replace(target)
    except (OSError, ValueError) as exc:
        log.warning("cannot prepare the Chinese word list (%s); loading jieba's full dictionary instead", exc)
        return None
    return target


def _chinese_tokenizer() -> jieba.Tokenizer:
    # jieba logs its progress at DEBUG level, loudly; an operator does not want it in the log.
    jieba.setLogLevel(logging.WARNING)
    dictionary = _common_words_dictionary()
    tokenizer = jieba.Tokenizer() if dictionary is None else jieba.Tokenizer(str(dictionary))
    tokenizer.initialize()
    return tokenizer


_STEMMER = snowballstemmer.stemmer("english")


@lru_cache(maxsize=8192)
def stem(word: str) -> str:
    return str(_STEMMER.stemWord(word))


# Phrases that say how often or when, never what about ("every time I sign in", "at the moment"), where a word
# of them alone may name a topic ("too many times"): compared by stem, dropped whole.
_STOP_PHRASES = frozenset(
    tuple(stem(word) for word in phrase.split())
    for phrase in (
        "every time",
        "every single time",
        "each time",
        "all the time",
        "this time",
        "at the moment",
        "at this point",
        "for now",
    )
)
_LONGEST_STOP_PHRASE = max(len(phrase) for phrase in _STOP_PHRASES)


def english_words(text: str) -> list[str]:
    """The Latin words of ``text`` (already lower-case), with "can't" read as "cannot" and "isn't" as "is not"."""
    text = text.replace("’", "'").replace("can't", "cannot").replace("won't", "will not")
    return _LATIN_WORD.findall(_CONTRACTION.sub(lambda m: " not" if m.group(1) == "n't" else " ", text))


_CAPITALISED = re.compile(r"(?<![\w'])([A-Z][a-z]+)\b")
_SENTENCE_START = re.compile(r"(?:^|[.!?。！？]\s*)$")


def _respelled(text: str, written: list[str], words: list[str]) -> str:
    """``text`` with each word of ``written`` that was read as another (``words``, in the same order) respelled."""
    changes = {old: new for old, new in zip(written, words, strict=True) if old != new}
    if not changes:
        return text
    return _LATIN_WORD.sub(lambda match: changes.get(match.group(), match.group()), text)


def _names(text: str) -> frozenset[str]:
    """Words written with a capital inside a sentence ("Apple", "Jira", "Berlin"): names, never typos."""
    return frozenset(
        match.group(1).casefold()
        for match in _CAPITALISED.finditer(text)
        if not _SENTENCE_START.search(text[: match.start()])
    )


@dataclass(frozen=True, slots=True)
class Unit:
    """One content word of a text and the index terms it stands for (its synonym group, or itself and its parts).

    ``corrected`` marks a word read as another (a typo or a wrong character), ``text`` being what was meant.
    """

    text: str
    terms: tuple[str, ...]
    corrected: bool = False


class Analyzer:
    """Turns text in either language into content words and index terms, the same way for topics and questions.

    ``keywords`` are taught to jieba so that it cuts them out whole; ``texts`` (every text the index is built
    from) are the known words a question's typos are corrected towards.
    """

    def __init__(
        self,
        synonyms: Synonyms,
        keywords: Iterable[str] = (),
        texts: Iterable[str] = (),
        shorthand: Shorthand | None = None,
    ) -> None:
        self._shorthand = shorthand or Shorthand.none()
        self._chinese = _chinese_tokenizer()
        self._chinese_words: dict[str, str] = {}
        self._english_phrases: dict[tuple[str, ...], str] = {}
        english: list[str] = []
        for group in synonyms:
            canonical = group_term(group[0])
            for word in group:
                if is_han(word):
                    self._chinese_words[word] = canonical
                    self._teach(word)
                else:
                    words = english_words(word)
                    english += words
                    stems = tuple(stem(w) for w in words)
                    if stems:
                        self._english_phrases[stems] = canonical
        self._longest_phrase = max((len(p) for p in self._english_phrases), default=1)
        # "login不了": an English word of a group whose Chinese word, with the Chinese that follows, is a word of
        # the synonyms (登录 + 不了 = 登录不了), read as that Chinese word. "VPN密码": an English word followed by a
        # Chinese word whose English, after it, is a phrase of the synonyms ("vpn password"), read as that phrase.
        self._chinese_of: dict[str, list[str]] = {}
        self._english_of: dict[str, list[str]] = {}
        for group in synonyms:
            chinese = [word for word in group if is_han(word)]
            english_words_of_group = [word for word in group if not is_han(word)]
            for word in group:
                if is_han(word):
                    self._english_of[word] = english_words_of_group
                elif _LATIN_WORD.fullmatch(word):
                    self._chinese_of[word] = chinese
        keywords = [normalise(keyword) for keyword in keywords]
        # Two words that go together in a synonym or a keyword ("sign in", "new leads"): the evidence that reads
        # a slip making another word as the word of the pair ("sigh in", "new leeds").
        self._pairs: set[tuple[str, ...]] = {phrase for phrase in self._english_phrases if len(phrase) == 2}
        for keyword in keywords:
            self._pairs.update(pairwise(stem(word) for word in english_words(keyword)))
        # Function words are cut out whole too, so that "咋整" is not read as 咋 + a stray 整.
        for word in (*keywords, *STOP_ZH):
            self._teach(word)
        texts = [*keywords, *(normalise(text) for text in texts)]
        # What a question's words are checked against: every word a topic or a synonym uses, and how often.
        chinese_known: dict[str, int] = {}
        for text in texts:
            english += english_words(text)
            for run in HAN_RUN.findall(text):
                for word in self._chinese.cut(run, HMM=False):
                    if word not in STOP_ZH:
                        chinese_known[word] = chinese_known.get(word, 0) + 1
        for word in self._chinese_words:
            chinese_known[word] = chinese_known.get(word, 0) + 1
        self._speller = Speller([*english, *STOP_EN, *self._shorthand.words])
        self._known_stems = frozenset(stem(word) for word in english)
        self._chinese_known = chinese_known
        # "锁?" -> [锁定, 锁住, ...]: the chosen words (keywords and synonyms, not every word of an example) with
        # one character blanked out, for finding a wrong character.
        chosen = {word for word in (*keywords, *self._chinese_words) if is_han(word) and len(word) in _REPAIR_LENGTHS}
        self._one_off: dict[str, list[str]] = {}
        for word in chosen:
            for position in range(len(word)):
                self._one_off.setdefault(word[:position] + "?" + word[position + 1 :], []).append(word)
        self._homophones = Homophones(
            chosen,
            known={*chinese_known, *STOP_ZH},
            kept={word for word in STOP_ZH if len(word) == 1},
            frequency=self._chinese.FREQ,
        )
        # "jiesuo", "mima": Chinese typed as pinyin in a Latin sentence, read as the word (never a word the
        # knowledge uses in English, and only spellings of two syllables or more).
        english_known = {word for word in english if word.isalpha()}
        self._pinyin = {
            spelling: word
            for spelling, word in spelled_in_pinyin(chosen, lambda w: self._chinese_words.get(w, w)).items()
            if len(spelling) >= _PINYIN_MIN_LETTERS and spelling not in english_known and spelling not in STOP_EN
        }

    def _teach(self, word: str) -> None:
        # A keyword or synonym jieba does not know is added so that it is cut out whole ("网断了", "登不上").
        if len(word) >= 2 and is_han(word) and not self._chinese.FREQ.get(word):
            self._chinese.add_word(word)

    def units(self, text: str, *, forgiving: bool = True, meant: list[str] | None = None) -> list[Unit]:
        """The content words of ``text`` in order, each with its index terms.

        ``forgiving`` reads it as a person's message: shorthand spelled out and typos corrected. Topic texts
        are read as written. ``meant``, when given, receives the text as it was read, piece by piece:
        normalised, shorthand spelled out, typos and wrong characters corrected.
        """
        names = _names(text) if forgiving else frozenset()
        text = normalise(text)
        if forgiving:
            text = self._shorthand.expand(text)
            if self._pinyin:
                text = _LATIN_WORD.sub(lambda word: self._pinyin.get(word.group(), word.group()), text)
            text = _LATIN_BEFORE_HAN.sub(self._as_chinese, text)
        units: list[Unit] = []
        start = 0
        # English inside Chinese ("CRM登不上") and Chinese inside English are each cut their own way.
        for run in HAN_RUN.finditer(text):
            units += self._english_units(text[start : run.start()], forgiving, names, meant)
            units += self._chinese_units(run.group(), forgiving, meant)
            start = run.end()
        units += self._english_units(text[start:], forgiving, names, meant)
        return units

    def read(self, text: str) -> tuple[list[Unit], str]:
        """A person's message as ``units`` reads it, and the whole text as meant (what the letters compare)."""
        meant: list[str] = []
        units = self.units(text, meant=meant)
        return units, "".join(meant)

    def _as_chinese(self, match: re.Match[str]) -> str:
        word, after = match.group(1), match.group(2)
        for chinese in self._chinese_of.get(word, ()):
            if any(chinese + after[:size] in self._chinese_words for size in range(1, len(after) + 1)):
                return chinese + after
        for size in range(len(after), 0, -1):
            for english in self._english_of.get(after[:size], ()):
                if tuple(stem(w) for w in english_words(f"{word} {english}")) in self._english_phrases:
                    return f"{word} {english} {after[size:]}"
        return match.group()

    def terms(self, text: str) -> list[str]:
        """The index terms of a topic text, read as written."""
        return [term for unit in self.units(text, forgiving=False) for term in unit.terms]

    def expand(self, text: str) -> str:
        """``text`` normalised, with its shorthand spelled out: what the character layer compares."""
        return self._shorthand.expand(normalise(text))

    # --- Chinese ---------------------------------------------------------------------------------------------

    def _chinese_units(self, text: str, forgiving: bool, meant: list[str] | None = None) -> Iterator[Unit]:
        spans: list[tuple[int, int]] = []
        if forgiving:  # 帐号 for 账号, 被所了 for 被锁了: the sound typed, the wrong character picked
            cuts = {0}
            for word in self._chinese.cut(text, HMM=False):
                cuts.add(max(cuts) + len(word))
            text, spans = self._homophones.correct(text, cuts)
        # Without jieba's HMM, characters it cannot place stay single instead of being glued into a new "word".
        words: list[tuple[str, bool]] = []
        offset = 0
        for word in self._chinese.cut(text, HMM=False):
            end = offset + len(word)
            words.append((word, any(begin < end and offset < stop for begin, stop in spans)))
            offset = end
        if forgiving:
            words = self._repair(words)
        if meant is not None:
            meant.append("".join(word for word, _ in words))
        for word, corrected in words:
            if word in STOP_ZH:
                continue
            canonical = self._chinese_words.get(word)
            if canonical:
                yield Unit(word, (canonical,), corrected)
                continue
            terms = [word]
            # The parts of a long word are terms too, as in jieba's search mode: 锁定原因 also means 锁定, 原因.
            covered = [False] * len(word)
            for size in (2, 3):
                for begin in range(len(word) - size + 1):
                    part = word[begin : begin + size]
                    if part != word and part not in STOP_ZH and self._chinese.FREQ.get(part):
                        terms.append(self._chinese_words.get(part, part))
                        covered[begin : begin + size] = [True] * size
            # And a lone character that is a synonym by itself, where no part holds it: 会不会丢 also means 丢.
            if len(word) > 2:
                terms += [
                    self._chinese_words[character]
                    for position, character in enumerate(word)
                    if not covered[position] and character in self._chinese_words
                ]
            yield Unit(word, tuple(terms), corrected)

    def _known_chinese(self, word: str) -> bool:
        # A lone character is known only as a synonym ("锁", "网"): seen alone in an example it may well be the
        # half of a word that jieba could not place.
        return word in self._chinese_words or (len(word) > 1 and word in self._chinese_known)

    def _repair(self, words: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
        """Replace pieces holding a character jieba could not place by the known word one character away."""
        stray = [len(w) == 1 and w not in STOP_ZH and not self._known_chinese(w) for w, _ in words]
        if not any(stray):
            return words
        repaired: list[tuple[str, bool]] = []
        index = 0
        while index < len(words):
            found = self._repair_at(words, stray, index)
            if found is None:
                repaired.append(words[index])
                index += 1
            else:
                word, end = found
                repaired.append((word, True))
                index = end
        return repaired

    def _repair_at(self, words: list[tuple[str, bool]], stray: list[bool], begin: int) -> tuple[str, int] | None:
        # The longest piece starting here that holds a stray character, no known word, and exactly one known
        # word (or one synonym group) one character away.
        for end in range(len(words), begin, -1):
            pieces = [word for word, _ in words[begin:end]]
            if len("".join(pieces)) not in _REPAIR_LENGTHS or not any(stray[begin:end]):
                continue
            if any(len(word) > 1 and self._known_chinese(word) for word in pieces):
                continue
            meant = self._one_character_away(pieces, stray[begin:end])
            if meant is not None:
                return meant, end
        return None

    def _one_character_away(self, pieces: list[str], stray: list[bool]) -> str | None:
        piece = "".join(pieces)
        # Which of the pieces each character came from. The character replaced must be a stray one, and the
        # characters that stay must be more than function words, or "讲个" would become "几个", "年会" "我会"
        # and "会不会影(响)" the keyword "会不会丢": a guess resting on 会不会 alone is no evidence.
        owner = [number for number, word in enumerate(pieces) for _ in word]
        candidates = {
            word
            for position in range(len(piece))
            if stray[owner[position]]
            for word in self._one_off.get(piece[:position] + "?" + piece[position + 1 :], ())
            if word != piece
            and any(pieces[n] not in STOP_ZH for n in {owner[p] for p in range(len(piece)) if p != position})
        }
        if not candidates:
            return None
        meanings = {self._chinese_words.get(word, word) for word in candidates}
        if len(meanings) == 1:
            return max(candidates, key=lambda word: (self._chinese_known.get(word, 0), word))
        # Words of several meanings one character away ("网洛": 网络 or 网速?): the one the topics use far more
        # often, or none rather than a guess.
        ranked = sorted(candidates, key=lambda word: (-self._chinese_known.get(word, 0), word))
        first, second = (self._chinese_known.get(word, 0) for word in ranked[:2])
        return ranked[0] if first >= 2 * second + 2 else None

    # --- English ---------------------------------------------------------------------------------------------

    def _in_phrase(self, word: str, stems: list[str], position: int) -> str | None:
        """The known word an unknown ``word`` was meant to be when, one letter changed, it makes a pair of words
        of the synonyms or keywords with the word before or after it ("sigh in" -> "sign in", "new leeds" ->
        "new leads").

        One changed letter alone is too weak a sign (it would read "date" as "data"); the phrase it completes
        is the evidence. Several meanings possible: none.
        """
        if len(word) < _PHRASE_SLIP_MIN_LETTERS:
            return None
        found: set[str] = set()
        for candidate in self._speller.within_one_edit(word):
            candidate_stem = stem(candidate)
            before = stems[position - 1 : position]
            after = stems[position + 1 : position + 2]
            if (before and (before[0], candidate_stem) in self._pairs) or (
                after and (candidate_stem, after[0]) in self._pairs
            ):
                found.add(candidate)
        meanings = {stem(candidate) for candidate in found}
        return min(found) if len(meanings) == 1 else None

    def _english_units(
        self, text: str, forgiving: bool, names: frozenset[str], meant: list[str] | None = None
    ) -> Iterator[Unit]:
        words = english_words(text)
        written = list(words)
        corrected = [False] * len(words)
        unknown: list[int] = []
        if forgiving:
            for position, word in enumerate(words):
                known = stem(word) in self._known_stems or word in names
                fix = None if known else self._speller.correct(word)
                if fix is not None:
                    words[position], corrected[position] = fix, True
                if not known:
                    unknown.append(position)
        stems = [stem(word) for word in words]
        # An unknown word that, one letter changed, makes a pair with its neighbour is that word of the pair,
        # even where the speller alone would have picked another near word ("how lnog": "long", not "log").
        for position in unknown:
            fix = self._in_phrase(written[position], stems, position)
            if fix is not None:
                words[position], stems[position], corrected[position] = fix, stem(fix), True
        if meant is not None:
            meant.append(_respelled(text, written, words))
        index = 0
        while index < len(words):
            skipped = next(
                (
                    size
                    for size in range(min(_LONGEST_STOP_PHRASE, len(words) - index), 1, -1)
                    if tuple(stems[index : index + size]) in _STOP_PHRASES
                ),
                0,
            )
            if skipped:
                index += skipped
                continue
            for size in range(min(self._longest_phrase, len(words) - index), 0, -1):
                canonical = self._english_phrases.get(tuple(stems[index : index + size]))
                if canonical:
                    yield Unit(
                        " ".join(words[index : index + size]), (canonical,), any(corrected[index : index + size])
                    )
                    index += size
                    break
            else:
                word, word_stem = words[index], stems[index]
                if word not in STOP_EN and word_stem not in _STOP_STEMS and not word.isdigit() and len(word) > 1:
                    yield Unit(word, (word_stem,), corrected[index])
                index += 1
