"""Finding the FAQ topic a free question is about, in Chinese or English, and knowing when not to answer.

``FaqIndex.build`` turns the topics (title, example questions and keywords of both languages) into a BM25 index
(bm25s); ``FaqIndex.search`` ranks the topics for one question and answers only when it is confident. Chinese
is cut into words with jieba, English is lower-cased, stripped of function words and stemmed (Snowball); words
of one synonym group (``knowledge/synonyms.yaml``) count as the same word in both.

Confidence is a rule over the ranking, not a list of banned words: the best topic must match most of what the
question says (its coverage of the question's content words), score clearly above the runner-up, and reach a
minimum score. A question about the weather or another system's password matches too little to pass.
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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from bot.errors import ConfigError
from bot.knowledge.topics import Topic, load_topics

with warnings.catch_warnings():
    # jieba 0.42 has invalid escape sequences ("\s", "\.") that newer Pythons warn about while compiling it.
    warnings.simplefilter("ignore", SyntaxWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    import jieba

import bm25s
import snowballstemmer

log = logging.getLogger(__name__)

LOCALE_ZH = "zh-CN"
LOCALE_EN = "en"
TOP_MATCHES = 3
# Longer input is cut: a question is a sentence or two, and the cost of a look-up must stay bounded.
MAX_QUESTION_CHARS = 500

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK = re.compile(f"[{_HAN}\u3040-\u30ff]")
_RUNS = re.compile(f"([{_HAN}]+)|([a-z0-9]+)")
_CONTRACTIONS = re.compile(r"(?<=[a-z])(n't|'s|'m|'re|'ve|'ll|'d)\b")

# Words that carry no topic in a question. Question words stay out of this list when they choose a topic
# ("why", "为什么"): they are mapped by the synonyms instead.
_STOP_EN = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being below between both
    but by can could did do does doing don done down during each either else ever every few for from further get
    gets getting got had has have having he her here hers herself him himself his how however i if in into is it
    its itself just let like lol me might mine more most must my myself need needs no nor not now of off ok on once
    only or other our ours ourselves out over own please pls plz really same shall she should so some such than
    thank thanks that the their theirs them themselves then there these they this those through thx to too today
    under until up us very was we were what whats when where which while who whom whose will with would yet you
    your yours yourself yourselves hi hey hello right still also even actually anyone anything something someone
    since via s m re ve ll d t okay yeah yes um uh oh hmm well sure maybe probably already never lot bit kind sort
    think know want wanted tell say said see give make made go going went thing things stuff way guys folks
    morning afternoon evening tonight yesterday tomorrow week weekend currently recently ago soon
    """.split()
)
_STOP_ZH = frozenset(
    """
    的 了 吗 呢 吧 啊 呀 哦 嘛 么 哈 啦 嗯 我 我的 你 您 他 她 它 我们 你们 他们 是 在 就 都 也 还 又 和 与 及 跟 对 把
    给 让 这 那 这个 那个 这是 有 会 能 可以 要 想 啥 什么 怎么 怎么办 怎样 如何 哪 一下 一个 请 麻烦 帮 帮我 是不是
    会不会 能不能 可不可以 有没有 还是 或者 但是 可是 因为 所以 如果 就是 只是 已经 刚才 刚刚 现在 突然 到底 得 地
    着 过 被 个 下 上 里 中 去 来 说 该 咋 咋整 咋办 怎么样 为 从 到 等 很 太 挺 好 没 不 嘞 哟 诶 喂 谁 其他 自己
    不会 会儿 一直 今天 明天 昨天 早上 上午 下午 晚上 今晚 时候 事 事情 东西 知道 觉得 看 看看 告诉 问 请问 你好 谢谢
    一些 有些 这些 那些 之类 什么样 怎么弄 怎么搞 能否 是否 可否 需要 这次 这样 那样 一样 还有 然后 结果 而且 的话
    些 才 呗 哪些 多少 几 点 儿 啥子 咱 咱们 大概 可能 应该 真的 真 特别 非常 比较 一点 有点
    """.split()
)


# Where jieba's dictionary is cut down to the common words, and its ready-made cache, live.
_DICTIONARY_MIN_FREQUENCY = 30


@dataclass(frozen=True, slots=True)
class Match:
    """One ranked topic: its id, its score and its title in the question's locale."""

    topic_id: str
    score: float
    title: str


@dataclass(frozen=True, slots=True)
class FaqResult:
    """What a look-up found: the answer to give (or ``None`` when not sure) and the best three topics."""

    query: str
    locale: str
    answer_id: str | None
    matches: list[Match]

    def to_json(self) -> dict[str, object]:
        """The result as the ``unlockbot faq --json`` line."""
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


def load_synonyms(path: Path) -> tuple[tuple[str, ...], ...]:
    """Read ``synonyms.yaml``: groups of words that mean the same; a missing file means no synonyms."""
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
            if key in seen and seen[key] != number:
                raise ConfigError(f"{path}: group {number}: {word!r} is already in group {seen[key]}")
            seen[key] = number
            words.append(key)
        result.append(tuple(words))
    return tuple(result)


# --- segmentation -----------------------------------------------------------------------------------------------


def _cache_dir() -> Path:
    return Path(tempfile.gettempdir())


def _common_words_dictionary() -> Path | None:
    """jieba's dictionary without its rare words, written once to the temporary folder.

    The full dictionary takes about a second to load even from jieba's cache; its common words (with our own
    vocabulary added on top) segment questions as well and load in a fraction of that.
    """
    source = Path(jieba.__file__).with_name("dict.txt")
    try:
        stamp = f"{jieba.__version__}-{source.stat().st_size}-{_DICTIONARY_MIN_FREQUENCY}"
        target = _cache_dir() / f"unlockbot-jieba-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}.txt"
        if target.exists():
            return target
        kept = []
        with source.open(encoding="utf-8") as lines:
            for line in lines:
                parts = line.split(" ")
                if len(parts) >= 2 and int(parts[1]) >= _DICTIONARY_MIN_FREQUENCY:
                    kept.append(f"{parts[0]} {parts[1]}\n")
        scratch = target.with_name(f"{target.name}.{os.getpid()}")
        scratch.write_text("".join(kept), encoding="utf-8")
        scratch.replace(target)
    except OSError as exc:
        log.warning("cannot prepare the word list for Chinese (%s); using jieba's full dictionary", exc)
        return None
    return target


def _chinese_tokenizer() -> jieba.Tokenizer:
    jieba.setLogLevel(logging.WARNING)
    dictionary = _common_words_dictionary()
    tokenizer = jieba.Tokenizer() if dictionary is None else jieba.Tokenizer(str(dictionary))
    tokenizer.initialize()
    return tokenizer


@lru_cache(maxsize=4096)
def _stem(word: str, _stemmer: snowballstemmer.Stemmer = snowballstemmer.stemmer("english")) -> str:  # noqa: B008
    return str(_stemmer.stemWord(word))


@dataclass(frozen=True, slots=True)
class Unit:
    """One content word of a question and the index terms it stands for (itself, its parts, its synonym)."""

    text: str
    terms: tuple[str, ...]


class Analyzer:
    """Turns text in either language into index terms; the same for topics and for questions."""

    def __init__(self, synonyms: Sequence[Sequence[str]], vocabulary: Iterable[str]) -> None:
        self._chinese = _chinese_tokenizer()
        self._phrases: dict[tuple[str, ...], str] = {}
        self._words: dict[str, str] = {}
        for group in synonyms:
            canonical = "~" + group[0]
            for word in group:
                self._register(word, canonical)
        self._longest_phrase = max((len(p) for p in self._phrases), default=1)
        for word in vocabulary:
            self._add_chinese_word(word)

    def _register(self, word: str, canonical: str) -> None:
        if _CJK.search(word) and not re.search("[a-z0-9]", word):
            self._words[word] = canonical
            self._add_chinese_word(word)
            return
        stems = tuple(_stem(token) for token in self._english_tokens(word))
        if stems:
            self._phrases[stems] = canonical

    def _add_chinese_word(self, word: str) -> None:
        if len(word) >= 2 and all(_CJK.match(char) for char in word) and not self._chinese.FREQ.get(word):
            self._chinese.add_word(word)

    @staticmethod
    def _english_tokens(text: str) -> list[str]:
        text = _CONTRACTIONS.sub(lambda m: " not" if m.group(1) == "n't" else " ", text.replace("’", "'"))
        return re.findall(r"[a-z0-9]+", text)

    def units(self, text: str) -> list[Unit]:
        """The content words of ``text`` in order, each with its index terms."""
        text = unicodedata.normalize("NFKC", text).casefold()
        units: list[Unit] = []
        for han, latin in _runs(text):
            if han:
                units.extend(self._chinese_units(han))
            else:
                units.extend(self._english_units(latin))
        return units

    def terms(self, text: str) -> list[str]:
        return [term for unit in self.units(text) for term in unit.terms]

    def _chinese_units(self, text: str) -> Iterator[Unit]:
        for word in self._chinese.cut(text, HMM=False):
            if word in _STOP_ZH:
                continue
            canonical = self._words.get(word)
            if canonical:
                yield Unit(word, (canonical,))
                continue
            terms = [word]
            # Parts of a long word are terms too, as in jieba's search mode: 锁定原因 also means 锁定 and 原因.
            if len(word) > 2:
                for size in (2, 3):
                    for start in range(len(word) - size + 1):
                        part = word[start : start + size]
                        if part != word and self._chinese.FREQ.get(part) and part not in _STOP_ZH:
                            terms.append(self._words.get(part, part))
            yield Unit(word, tuple(terms))

    def _english_units(self, text: str) -> Iterator[Unit]:
        words = self._english_tokens(text)
        stems = [_stem(word) for word in words]
        index = 0
        while index < len(words):
            for size in range(min(self._longest_phrase, len(words) - index), 0, -1):
                canonical = self._phrases.get(tuple(stems[index : index + size]))
                if canonical:
                    yield Unit(" ".join(words[index : index + size]), (canonical,))
                    index += size
                    break
            else:
                word = words[index]
                index += 1
                if word not in _STOP_EN and not word.isdigit() and len(word) > 1:
                    yield Unit(word, (stems[index - 1],))


def _runs(text: str) -> Iterator[tuple[str, str]]:
    # English inside Chinese ("CRM登不上") and Chinese inside English are each cut their own way.
    start = 0
    for match in re.finditer(f"[{_HAN}]+", text):
        if match.start() > start:
            yield "", text[start : match.start()]
        yield match.group(), ""
        start = match.end()
    if start < len(text):
        yield "", text[start:]


# --- the index --------------------------------------------------------------------------------------------------

# How much each part of a topic counts: its curated keywords most, its title (the canonical question) next,
# its example questions least. Each part is its own BM25 index so that one part cannot drown another.
FIELD_WEIGHTS: Mapping[str, float] = {"keywords": float(os.environ.get("WK", 1.0)), "title": float(os.environ.get("WT", 1.0)), "questions": float(os.environ.get("WQ", 1.0))}
K1 = float(os.environ.get("K1", 1.2))
B = float(os.environ.get("B", 0.75))


@dataclass(frozen=True, slots=True)
class ConfidenceRule:
    """When the best topic is good enough to answer with.

    ``coverage``: share of the question's content words that the best topic knows (unknown words count too,
    so "Outlook password" is only half covered); ``margin``: the best score over the runner-up's;
    ``min_score``: the best score itself, as a share of what the question could score at most.
    """

    coverage: float = 0.6
    margin: float = 1.15
    min_score: float = 0.25


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    weight: float
    bm25: bm25s.BM25
    vocabulary: frozenset[str]


class FaqIndex:
    """The FAQ topics, ready to be searched; build it once at start and share it."""

    def __init__(self, topics: Mapping[str, Topic], analyzer: Analyzer, rule: ConfidenceRule) -> None:
        self._topics = topics
        self._ids = list(topics)
        self._analyzer = analyzer
        self.rule = rule
        self._fields: list[_Field] = []
        by_field: dict[str, list[list[str]]] = {name: [] for name in FIELD_WEIGHTS}
        for topic in topics.values():
            for name in FIELD_WEIGHTS:
                texts = (
                    [topic.title[locale] for locale in ("zh-CN", "en")]
                    if name == "title"
                    else [text for locale in ("zh-CN", "en") for text in getattr(topic, name)[locale]]
                )
                by_field[name].append([term for text in texts for term in analyzer.terms(text)])
        for name, corpus in by_field.items():
            bm25 = bm25s.BM25(k1=K1, b=B)
            bm25.index(corpus, show_progress=False)
            self._fields.append(_Field(name, FIELD_WEIGHTS[name], bm25, frozenset(t for doc in corpus for t in doc)))
        self._topic_terms = [frozenset(t for name in by_field for t in by_field[name][i]) for i in range(len(self._ids))]
        self._anchors = [frozenset(by_field["keywords"][i] + by_field["title"][i]) for i in range(len(self._ids))]
        n = len(self._ids)
        self._vocabulary = frozenset(t for terms in self._topic_terms for t in terms)
        self._idf = {}
        for term in self._vocabulary:
            df = sum(term in terms for terms in self._topic_terms)
            self._idf[term] = math.log(1 + (n - df + 0.5) / (df + 0.5))

    @classmethod
    def build(
        cls,
        topics: Mapping[str, Topic],
        synonyms: Sequence[Sequence[str]] = (),
        rule: ConfidenceRule | None = None,
    ) -> FaqIndex:
        """Index every topic's title, example questions and keywords in both languages."""
        vocabulary = [word for topic in topics.values() for locale in ("zh-CN", "en") for word in topic.keywords[locale]]
        analyzer = Analyzer(synonyms, vocabulary)
        return cls(topics, analyzer, rule or ConfidenceRule())

    @classmethod
    def load(cls, knowledge_dir: Path) -> FaqIndex:
        """Load ``topics/`` and ``synonyms.yaml`` from the knowledge folder and build the index."""
        return cls.build(load_topics(knowledge_dir / "topics"), load_synonyms(knowledge_dir / "synonyms.yaml"))

    def _scores(self, terms):
        import numpy as np
        total = np.zeros(len(self._ids))
        for field in self._fields:
            known = [t for t in terms if t in field.vocabulary]
            if known:
                total += field.weight * field.bm25.get_scores(known)
        return total

    def search(self, text: str, locale: str | None = None) -> FaqResult:
        """Rank the topics for ``text``; ``answer_id`` is set only when the best one is a confident answer."""
        locale = locale or detect_locale(text)
        units = self._analyzer.units(text[:MAX_QUESTION_CHARS])
        terms = [term for unit in units for term in unit.terms if term in self._vocabulary]
        if not terms:
            return FaqResult(text, locale, None, [])
        scores = self._scores(terms)
        order = sorted(range(len(self._ids)), key=lambda i: -float(scores[i]))[:TOP_MATCHES]
        matches = [
            Match(self._ids[i], float(scores[i]), self._topics[self._ids[i]].title[locale])
            for i in order
            if scores[i] > 0
        ]
        return FaqResult(text, locale, None, matches)

    def details(self, text):
        units = self._analyzer.units(text[:MAX_QUESTION_CHARS])
        terms = [term for unit in units for term in unit.terms if term in self._vocabulary]
        if not terms:
            return None
        scores = self._scores(terms)
        order = sorted(range(len(self._ids)), key=lambda i: -float(scores[i]))
        best = self._topic_terms[order[0]]
        anchors = self._anchors[order[0]]
        out = []
        for u in units:
            known = [t for t in u.terms if t in self._vocabulary]
            out.append(dict(text=u.text, known=bool(known), idf=max((self._idf[t] for t in known), default=None),
                            covered=any(t in best for t in u.terms), anchor=any(t in anchors for t in u.terms)))
        return dict(units=out, scores=[float(scores[i]) for i in order], top=self._ids[order[0]])
