"""Finding the FAQ topic a free question is about, in Chinese or English, and knowing when not to answer.

``FaqIndex.build`` turns the topics (title, example questions and keywords of both languages) into one BM25
index (bm25s). Chinese is cut into words with jieba, English is lower-cased, stripped of function words and
stemmed (Snowball); the words of one synonym group (``knowledge/synonyms.yaml``) count as one word in both.

``FaqIndex.search`` ranks the topics for a question and names an answer only when a ``ConfidenceRule`` holds:
the best topic must account for most of what the question says, weighing each word by how specific it is
(a word no topic knows weighs most, so "Slack password" is half unexplained), and must match at least one of
its own keywords or title words. Out-of-domain refusal comes from that rule, not from a list of banned words.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import tempfile
import unicodedata
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import bm25s
import snowballstemmer
import yaml

from bot.errors import ConfigError
from bot.knowledge.topics import Topic, load_topics

with warnings.catch_warnings():
    # jieba 0.42 has invalid escape sequences in regular strings, which Python warns about while compiling it,
    # and may import the deprecated pkg_resources. Neither matters to us; keep both out of the log and of
    # test runs that turn warnings into errors.
    for category in (DeprecationWarning, PendingDeprecationWarning, SyntaxWarning, UserWarning):
        warnings.simplefilter("ignore", category)
    import jieba

log = logging.getLogger(__name__)

LOCALE_ZH = "zh-CN"
LOCALE_EN = "en"
TOP_MATCHES = 3
# Longer input is cut: a question is a sentence or two, and a look-up must stay cheap whatever is pasted in.
MAX_QUESTION_CHARS = 500

# How much each part of a topic counts: its curated keywords most, its title (the canonical question) next,
# each example question least. Weights repeat the terms in the topic's one BM25 document.
FIELD_WEIGHTS: Mapping[str, int] = {"keywords": 3, "title": 2, "questions": 1}
BM25_K1 = 1.5
BM25_B = 0.75

# jieba's dictionary is cut down to words at least this frequent, plus our own vocabulary (see below).
DICTIONARY_MIN_FREQUENCY = 30

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_RUN = re.compile(f"[{_HAN}]+")
_CJK = re.compile(f"[{_HAN}\u3040-\u30ff]")
_LATIN_WORD = re.compile(r"[a-z0-9]+")
_CONTRACTION = re.compile(r"(?<=[a-z])(n't|'s|'m|'re|'ve|'ll|'d)\b")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that name no topic. Question words that do choose a topic ("why", "为什么") are not here: the
# synonyms map them instead.
_STOP_EN = _word_set(
    """
    a about above again against all am an and any are as at be because been before being below between both
    but by can could did do does doing don done down during each either else ever every few for from further get
    gets getting got had has have having he her here hers herself him himself his how however i if in into is it
    its itself just let like lol me might mine more most must my myself need needs no nor not now of off ok on once
    only or other our ours ourselves out over own please pls plz really same shall she should so some such than
    thank thanks that the their theirs them themselves then there these they this those through thx to too today
    under until up us very was we were what whats when where which while who whom whose will with would yet you
    your yours yourself yourselves hi hey hello right still also even actually anyone anything something someone
    since via s m re ve ll d t cannot okay yeah yes um uh oh hmm well sure maybe probably already never lot bit
    kind sort think know want wanted tell say said see give make made go going went thing things stuff way guys folks
    morning afternoon evening tonight yesterday tomorrow week weekend currently recently ago soon find take takes
    took help keep keeps kept ran come comes coming everything nothing anybody somebody able put happen seem seems
    anyway say says show shows showing shown display displays displayed new another one two three
    four five six seven eight nine ten
    """
)
_STOP_ZH = _word_set(
    """
    的 了 吗 呢 吧 啊 呀 哦 嘛 么 哈 啦 嗯 我 我的 你 您 他 她 它 我们 你们 他们 是 在 就 都 也 还 又 和 与 及 跟 对 把
    给 让 这 那 这个 那个 这是 有 会 能 可以 要 想 啥 什么 怎么 怎么办 怎样 如何 哪 一下 一个 请 麻烦 帮 帮我 是不是
    会不会 能不能 可不可以 有没有 还是 或者 但是 可是 因为 所以 如果 就是 只是 已经 刚才 刚刚 现在 突然 到底 得 地
    着 过 被 个 下 上 里 中 去 来 说 该 咋 咋整 咋办 怎么样 为 从 到 等 很 太 挺 好 没 不 嘞 哟 诶 喂 谁 其他 自己
    不会 会儿 一直 今天 明天 昨天 早上 上午 下午 晚上 今晚 时候 事 事情 东西 知道 觉得 看 看看 告诉 问 请问 你好 谢谢
    一些 有些 这些 那些 之类 什么样 怎么弄 怎么搞 能否 是否 可否 需要 这次 这样 那样 一样 还有 然后 结果 而且 的话
    些 才 呗 哪些 多少 几 点 儿 啥子 咱 咱们 大概 可能 应该 真的 真 特别 非常 比较 一点 有点 才能 这种 那种 一声
    完全 那边 这边 哪个 最近 之前 以前 刚 老 总是 总 还能 能够 提示 显示 做 干 弄 搞 算 问题 情况 一下子 不能 不了
    """
)


@dataclass(frozen=True, slots=True)
class Match:
    """One ranked topic: its id, its score and its title in the question's locale."""

    topic_id: str
    score: float
    title: str


@dataclass(frozen=True, slots=True)
class FaqResult:
    """What a look-up found: the topic to answer with (``None`` when not sure) and the best three topics."""

    query: str
    locale: str
    answer_id: str | None
    matches: list[Match]

    def to_json(self) -> dict[str, object]:
        """The result as one line of ``unlockbot faq --json``."""
        return {
            "query": self.query,
            "locale": self.locale,
            "answer_id": self.answer_id,
            "matches": [{"id": m.topic_id, "score": round(m.score, 4), "title": m.title} for m in self.matches],
        }


def detect_locale(text: str) -> str:
    """zh-CN when the text has any Chinese (or Japanese) characters, else en."""
    return LOCALE_ZH if _CJK.search(text) else LOCALE_EN


# --- synonyms ---------------------------------------------------------------------------------------------------

Synonyms = tuple[tuple[str, ...], ...]


def load_synonyms(path: Path) -> Synonyms:
    """Read ``synonyms.yaml``: groups of words that mean the same here. A missing file means no synonyms."""
    if not path.exists():
        return ()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
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
            key = unicodedata.normalize("NFKC", word).casefold().strip()
            if seen.get(key, number) != number:
                raise ConfigError(f"{path}: group {number}: {word!r} is already in group {seen[key]}")
            seen[key] = number
            words.append(key)
        result.append(tuple(words))
    return tuple(result)


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
    # Both libraries log their progress at DEBUG level, loudly; an operator wants neither in the log.
    jieba.setLogLevel(logging.WARNING)
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    dictionary = _common_words_dictionary()
    tokenizer = jieba.Tokenizer() if dictionary is None else jieba.Tokenizer(str(dictionary))
    tokenizer.initialize()
    return tokenizer


_STEMMER = snowballstemmer.stemmer("english")


@lru_cache(maxsize=8192)
def _stem(word: str) -> str:
    return str(_STEMMER.stemWord(word))


def _english_words(text: str) -> list[str]:
    text = text.replace("’", "'").replace("can't", "cannot").replace("won't", "will not")
    return _LATIN_WORD.findall(_CONTRACTION.sub(lambda m: " not" if m.group(1) == "n't" else " ", text))


def _is_han(word: str) -> bool:
    return bool(word) and _HAN_RUN.fullmatch(word) is not None


@dataclass(frozen=True, slots=True)
class Unit:
    """One content word of a text and the index terms it stands for (its synonym group, or itself and its parts)."""

    text: str
    terms: tuple[str, ...]


class Analyzer:
    """Turns text in either language into content words and index terms, the same way for topics and questions."""

    def __init__(self, synonyms: Synonyms, vocabulary: Sequence[str]) -> None:
        self._chinese = _chinese_tokenizer()
        self._chinese_words: dict[str, str] = {}
        self._english_phrases: dict[tuple[str, ...], str] = {}
        for group in synonyms:
            canonical = "~" + group[0]
            for word in group:
                if _is_han(word):
                    self._chinese_words[word] = canonical
                    self._teach(word)
                else:
                    stems = tuple(_stem(w) for w in _english_words(word))
                    if stems:
                        self._english_phrases[stems] = canonical
        self._longest_phrase = max((len(p) for p in self._english_phrases), default=1)
        for word in vocabulary:
            self._teach(unicodedata.normalize("NFKC", word).casefold())

    def _teach(self, word: str) -> None:
        # A keyword or synonym jieba does not know is added so that it is cut out whole ("网断了", "登不上").
        if len(word) >= 2 and _is_han(word) and not self._chinese.FREQ.get(word):
            self._chinese.add_word(word)

    def units(self, text: str) -> list[Unit]:
        """The content words of ``text`` in order, each with its index terms."""
        text = unicodedata.normalize("NFKC", text).casefold()
        units: list[Unit] = []
        start = 0
        # English inside Chinese ("CRM登不上") and Chinese inside English are each cut their own way.
        for run in _HAN_RUN.finditer(text):
            units += self._english_units(text[start : run.start()])
            units += self._chinese_units(run.group())
            start = run.end()
        units += self._english_units(text[start:])
        return units

    def terms(self, text: str) -> list[str]:
        return [term for unit in self.units(text) for term in unit.terms]

    def _chinese_units(self, text: str) -> Iterator[Unit]:
        # Without jieba's HMM, characters it cannot place stay single instead of being glued into a new "word".
        for word in self._chinese.cut(text, HMM=False):
            if word in _STOP_ZH:
                continue
            canonical = self._chinese_words.get(word)
            if canonical:
                yield Unit(word, (canonical,))
                continue
            terms = [word]
            # The parts of a long word are terms too, as in jieba's search mode: 锁定原因 also means 锁定, 原因.
            for size in (2, 3):
                for begin in range(len(word) - size + 1):
                    part = word[begin : begin + size]
                    if part != word and part not in _STOP_ZH and self._chinese.FREQ.get(part):
                        terms.append(self._chinese_words.get(part, part))
            yield Unit(word, tuple(terms))

    def _english_units(self, text: str) -> Iterator[Unit]:
        words = _english_words(text)
        stems = [_stem(word) for word in words]
        index = 0
        while index < len(words):
            for size in range(min(self._longest_phrase, len(words) - index), 0, -1):
                canonical = self._english_phrases.get(tuple(stems[index : index + size]))
                if canonical:
                    yield Unit(" ".join(words[index : index + size]), (canonical,))
                    index += size
                    break
            else:
                word, stem = words[index], stems[index]
                index += 1
                if word not in _STOP_EN and not word.isdigit() and len(word) > 1:
                    yield Unit(word, (stem,))


# --- confidence -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfidenceRule:
    """When the best-ranked topic is a confident answer.

    Each content word of the question weighs its inverse topic frequency (at least ``known_floor``); a word
    that no topic uses weighs ``unknown``, a lone Chinese character ``single_char`` times as much. The best
    topic must cover at least ``coverage`` of that weight, one of the words it covers must be among its
    keywords or title words and be specific (inverse topic frequency above ``anchor_specificity``), and its
    score must beat the runner-up's by more than ``margin`` times. Calibrated on the topics' own example
    questions (each left out in turn) and the out-of-domain questions in ``tests/knowledge/test_retrieval.py``;
    among settings equally good there, the held-out set in ``tests/data/faq_eval.yaml`` broke the tie.
    """

    coverage: float = 0.45
    unknown: float = 2.5
    known_floor: float = 1.0
    single_char: float = 0.5
    anchor_specificity: float = 0.5
    margin: float = 1.0


@dataclass(frozen=True, slots=True)
class _TopicTerms:
    all: frozenset[str]
    anchors: frozenset[str]


# --- the index --------------------------------------------------------------------------------------------------


class FaqIndex:
    """The FAQ topics, ready to be searched. Build it once at start and share it: ``search`` only reads."""

    def __init__(self, topics: Mapping[str, Topic], analyzer: Analyzer, rule: ConfidenceRule) -> None:
        self._topics = dict(topics)
        self._ids = list(topics)
        self._analyzer = analyzer
        self.rule = rule
        corpus: list[list[str]] = []
        self._terms: list[_TopicTerms] = []
        for topic in topics.values():
            fields = {
                "keywords": [k for locale in (LOCALE_ZH, LOCALE_EN) for k in topic.keywords[locale]],
                "title": [topic.title[LOCALE_ZH], topic.title[LOCALE_EN]],
                "questions": [q for locale in (LOCALE_ZH, LOCALE_EN) for q in topic.questions[locale]],
            }
            terms = {name: [t for text in texts for t in analyzer.terms(text)] for name, texts in fields.items()}
            corpus.append([t for name, weight in FIELD_WEIGHTS.items() for t in terms[name] * weight])
            self._terms.append(_TopicTerms(frozenset(corpus[-1]), frozenset(terms["keywords"] + terms["title"])))
        self._bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B)
        self._bm25.index(corpus, show_progress=False)
        count = len(self._ids)
        frequency: dict[str, int] = {}
        for topic_terms in self._terms:
            for term in topic_terms.all:
                frequency[term] = frequency.get(term, 0) + 1
        self._specificity = {t: math.log(1 + (count - n + 0.5) / (n + 0.5)) for t, n in frequency.items()}

    @classmethod
    def build(
        cls, topics: Mapping[str, Topic], synonyms: Synonyms = (), rule: ConfidenceRule | None = None
    ) -> FaqIndex:
        """Index every topic's title, example questions and keywords in both languages."""
        if not topics:
            raise ConfigError("the FAQ index needs at least one topic")
        vocabulary = [
            k for topic in topics.values() for locale in (LOCALE_ZH, LOCALE_EN) for k in topic.keywords[locale]
        ]
        return cls(topics, Analyzer(synonyms, vocabulary), rule or ConfidenceRule())

    @classmethod
    def load(cls, knowledge_dir: Path, rule: ConfidenceRule | None = None) -> FaqIndex:
        """Load ``topics/*.yaml`` and ``synonyms.yaml`` from the knowledge folder and build the index."""
        topics = load_topics(knowledge_dir / "topics")
        return cls.build(topics, load_synonyms(knowledge_dir / "synonyms.yaml"), rule)

    @property
    def topics(self) -> Mapping[str, Topic]:
        return self._topics

    def search(self, text: str, locale: str | None = None) -> FaqResult:
        """Rank the topics for ``text``; ``answer_id`` is set only when the best one is a confident answer."""
        question = _CONTROL.sub(" ", text[:MAX_QUESTION_CHARS])
        locale = locale or detect_locale(question)
        units = self._analyzer.units(question)
        terms = [term for unit in units for term in unit.terms if term in self._specificity]
        if not terms:
            return FaqResult(text, locale, None, [])
        scores = [float(score) for score in self._bm25.get_scores(terms)]
        order = sorted(range(len(self._ids)), key=lambda i: -scores[i])
        matches = [
            Match(self._ids[i], scores[i], self._topics[self._ids[i]].title[locale])
            for i in order[:TOP_MATCHES]
            if scores[i] > 0
        ]
        runner_up = scores[order[1]] if len(order) > 1 else 0.0
        confident = matches and self._confident(units, self._terms[order[0]], scores[order[0]], runner_up)
        return FaqResult(text, locale, matches[0].topic_id if confident else None, matches)

    def _confident(self, units: Sequence[Unit], best: _TopicTerms, score: float, runner_up: float) -> bool:
        rule = self.rule
        covered = total = 0.0
        anchored = False
        for unit in units:
            known = [self._specificity[t] for t in unit.terms if t in self._specificity]
            weight = max(max(known), rule.known_floor) if known else rule.unknown
            if len(unit.text) == 1 and _is_han(unit.text):
                weight *= rule.single_char
            total += weight
            if any(term in best.all for term in unit.terms):
                covered += weight
                anchored = anchored or any(
                    term in best.anchors and self._specificity[term] > rule.anchor_specificity for term in unit.terms
                )
        return anchored and covered >= rule.coverage * total and score > rule.margin * runner_up
