"""Finding the FAQ topic a free question is about, in Chinese or English, and knowing when not to answer.

Four layers read a question. The word layer is BM25 over one document per topic (its keywords, title and
example questions in both languages, cut into words by ``bot.knowledge.analysis``: shorthand spelled out,
typos corrected, synonyms merged). The character layer (``bot.knowledge.similarity``) compares the question
as read (the slips the word layer found put right) with every example question letter by letter, which
carries what the words miss: a slip no word was corrected for, a listed question typed again. The example
layer (``bot.knowledge.intent``) finds the example most like the question, words and letters together, among
the topics' examples and the off-topic examples of ``knowledge/off_topic.yaml``. The learned layer
(``bot.knowledge.learned``) is a naive Bayes classifier over the same words and letters, trained by counting
when the index is built on the topics' examples, the off-topic examples and the training questions of
``knowledge/training/`` (the tuning folds' questions), with off-topic as one more class. A topic's score is
its BM25 score relative to the best one plus ``char_weight`` times its best character similarity plus
``likeness_weight`` times its example likeness plus ``learned_weight`` times the learned layer's
probability for it.

``ConfidenceRule`` then sorts each question into one of three:

- **answer**: the best topic explains enough of what the question says (each word weighed by how specific
  it is; a word no topic knows weighs most, so in "my Slack password" a third is unexplained), one of the
  words it explains is a keyword or title word of its own, and it leads the runner-up; or the question is
  all but word for word one of a topic's examples, or the learned layer gives the best topic at least
  ``learned_answer``. Less needs explaining when the question names the
  subject itself (locked, unlock, sign in: the ``core`` synonym groups).
- **off-topic**: the question is about another system and not the CRM (the ``elsewhere`` groups: Outlook,
  DingTalk, the printer), or asks how to do other work in the CRM without naming a lock, sign-in or password
  (the ``tasks`` groups: "how do I assign a lead", "怎么导出报表"), or says little the FAQ knows about and
  nothing of the subject (weather, lunch, a poem), or is most like an off-topic example (another CRM feature,
  another system's password), or the learned layer gives off-topic at least ``learned_off_topic`` and it
  names nothing of the subject; the bot says what it can help with instead of offering topics that do not
  fit.
- **unsure**: in between; the bot offers the closest topics, never an empty list.

The rule's numbers are calibrated by cross-validation (``bot.knowledge.calibration``): the topics' own
example questions and the off-topic examples, each scored by an index built without it (ten folds), and the
tuning folds in ``tests/data`` (``faq_tune.yaml`` and ``faq_holdout.yaml`` to ``faq_holdout6.yaml``).
The learned layer's five numbers were chosen by nested leave-one-fold-out over those seven folds, each fold
scored by a layer trained without it. The held-out fold (``tests/data/faq_holdout8.yaml``) is never used to
choose them, nor to train.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bot.errors import ConfigError
from bot.knowledge.analysis import Analyzer, Roles, Synonyms, Unit, load_roles, load_synonyms
from bot.knowledge.intent import IntentModel, load_off_topic
from bot.knowledge.learned import LearnedModel, Training, load_training, probabilities
from bot.knowledge.similarity import NgramIndex
from bot.knowledge.topics import Topic, load_topics
from bot.knowledge.wording import Shorthand
from bot.language import LOCALE_EN, LOCALE_ZH, guess_locale, is_han

__all__ = [
    "MAX_QUESTION_CHARS",
    "TOP_MATCHES",
    "ConfidenceRule",
    "FaqIndex",
    "FaqResult",
    "Match",
    "Reading",
    "Word",
    "load_synonyms",
]

TOP_MATCHES = 3
# Longer input is cut: a question is a sentence or two, and a look-up must stay cheap whatever is pasted in.
MAX_QUESTION_CHARS = 500
LOCALES = (LOCALE_ZH, LOCALE_EN)

# How much each part of a topic counts in its BM25 document: its curated keywords most, its title (the
# canonical question) next, each example question least.
FIELD_WEIGHTS: Mapping[str, float] = {"keywords": 3.0, "title": 2.0, "questions": 1.0}
BM25_K1 = 1.5
BM25_B = 0.75
# How much a topic that uses a word only in its example questions counts towards the word's document frequency.
QUESTION_ONLY_SHARE = 0.3

# A question asking how or where to do something, or asking for it to be done: "how do I", "how to", "where can
# I", "is there a way to", "can I", "can you", 怎么, 如何, 怎样, 咋, 在哪, 帮我, 能不能, 可以, 能……吗. Read on the
# normalised text with shorthand spelled out. Only the other-work rule reads it (a how-to or a request about
# another part of the CRM), never the ranking.
_HOW_TO = re.compile(
    r"\bhow\s+(?:do|does|can|could|should|would|to)\b|\bwhere\s+(?:do|does|can|could|should|is|are)\b"
    r"|\bway\s+to\b|\b(?:can|could|would)\s+you\b|\bcan\s+i\b|怎么|怎样|如何|咋|在哪|哪里|哪儿|帮我|能不能|可以|能[^，。？！,.?!]{1,12}吗"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


@dataclass(frozen=True, slots=True)
class Match:
    """One ranked topic: its id, its score and its title in the question's locale."""

    topic_id: str
    score: float
    title: str


@dataclass(frozen=True, slots=True)
class FaqResult:
    """What a look-up found.

    ``answer_id`` is the topic to answer with, ``None`` when not sure; ``off_topic`` says the question is not
    about what the FAQ covers at all (then there is nothing worth offering); ``matches`` are the best three
    topics either way.
    """

    query: str
    locale: str
    answer_id: str | None
    matches: list[Match]
    off_topic: bool = False

    def to_json(self) -> dict[str, object]:
        """The result as one line of ``unlockbot faq --json``."""
        return {
            "query": self.query,
            "locale": self.locale,
            "answer_id": self.answer_id,
            "off_topic": self.off_topic,
            "matches": [{"id": m.topic_id, "score": round(m.score, 4), "title": m.title} for m in self.matches],
        }


# --- what a question says ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Word:
    """One content word of a question, as the confidence rule sees it.

    ``short`` marks a lone Chinese character or an unknown English word of three letters or fewer: often a
    slip or a particle, so it weighs less. ``specificity`` is the highest inverse topic frequency of its known
    terms (``None``: no topic knows it); ``topics`` are the topics that use one of its terms; ``anchors`` maps
    a topic to the specificity of the word's best term among that topic's keywords and title words. ``core``,
    ``ours``, ``elsewhere``, ``task`` and ``credential`` say it names the FAQ's subject (being locked, unlocking,
    signing in), the CRM, another system, other work done in the CRM, or what one signs in with (see ``Roles``).
    """

    short: bool
    corrected: bool
    core: bool
    ours: bool
    elsewhere: bool
    specificity: float | None
    topics: frozenset[int]
    anchors: Mapping[int, float]
    task: bool = False
    credential: bool = False
    office: bool = False


@dataclass(frozen=True, slots=True)
class Reading:
    """Everything the rule needs about one question: its words and each layer's score per topic.

    ``likeness`` is the example layer's (``bot.knowledge.intent``) closest example per topic, and
    ``off_topic_likeness`` its closest off-topic example; both are empty or zero without that layer.
    ``how_to`` says the question asks how or where to do something, or asks for it ("how do I ...", "where
    can I ...", "can you ...", 怎么, 如何, 在哪, 帮我, 能……吗). ``learned`` is the learned layer's
    (``bot.knowledge.learned``) score per topic, then for off-topic; empty without that layer.
    """

    words: tuple[Word, ...]
    bm25: tuple[float, ...]
    characters: tuple[float, ...]
    likeness: tuple[float, ...] = ()
    off_topic_likeness: float = 0.0
    how_to: bool = False
    learned: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    """The rule's decision: topics in rank order with their scores, the answer (an index) and off-topic."""

    order: list[int]
    scores: list[float]
    answer: int | None
    off_topic: bool


# --- the rule ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfidenceRule:
    """How topics are ranked, and when the best one is an answer, when the question is off-topic.

    Ranking: BM25 relative to the best topic, plus ``char_weight`` times the character similarity, plus
    ``likeness_weight`` times the example layer's likeness, plus ``learned_weight`` times the learned layer's
    probability (its scores through a softmax ``learned_sharpness`` times as sharp).

    Answer: each content word weighs its inverse topic frequency, kept between ``known_floor`` and
    ``known_ceiling``; a word no topic uses weighs ``unknown``; a short word (a lone Chinese character, an
    unknown English word of three letters or fewer) ``short_word`` times as much. The best topic must cover at
    least ``coverage`` of that weight (``core_coverage`` when the question names the subject itself: locked,
    unlock, sign in), one word it covers must be among its keywords or title words with a specificity above
    ``anchor_specificity``, and its score must exceed ``margin`` times the runner-up's. A question whose
    character similarity to one of the best topic's examples reaches ``echo`` is answered whatever the words
    say: it is that example, give or take a slip.

    Off-topic: a question about another system (Outlook, DingTalk, the printer) that does not name the CRM;
    one that asks how to do other work in the CRM (assign a lead, export a report) and names no lock, sign-in
    or password; one with no word naming the subject that resembles an off-topic example (``off_topic.yaml``)
    at least ``off_topic_floor`` and more than ``off_topic_lead`` times any topic's example; or one that is not an
    answer, has no word naming the subject, of which the best topic explains less than ``in_domain``, and
    which resembles no example beyond ``char_floor``; or one with no word naming the subject that the learned
    layer gives off-topic at least ``learned_off_topic``. The learned layer alone answers with the best topic
    when it gives it at least ``learned_answer`` (after the off-topic checks, and if it leads by ``margin``);
    and no question that does not name the subject is answered while the learned layer finds off-topic more
    than ``learned_veto`` times as likely as the best topic. ``learned_weight=0``, ``learned_off_topic`` and
    ``learned_answer`` above one and ``learned_veto=math.inf`` leave the learned layer out.

    The defaults are what ``python -m bot.knowledge.calibration`` chose; see that module for how. The five
    ``learned_*`` numbers were chosen by nested leave-one-fold-out over the seven tuning folds (each fold scored
    by a learned layer trained without it); that search does not touch them.
    """

    char_weight: float = 1.0
    coverage: float = 0.5
    core_coverage: float = 0.25
    unknown: float = 3.0
    known_floor: float = 1.0
    known_ceiling: float = 1.5
    short_word: float = 1.0
    anchor_specificity: float = 0.0
    margin: float = 1.0
    echo: float = 0.9
    in_domain: float = 0.3
    char_floor: float = 0.6
    likeness_weight: float = 0.0
    off_topic_lead: float = 2.0
    off_topic_floor: float = 0.1
    learned_weight: float = 1.5
    learned_sharpness: float = 0.5
    learned_off_topic: float = 0.5
    learned_answer: float = 0.9
    learned_veto: float = 1.0

    def judge(self, reading: Reading) -> Verdict:
        """Rank the topics for ``reading`` and decide between answer, unsure and off-topic."""
        best_bm25 = max(reading.bm25, default=0.0)
        likeness = reading.likeness or (0.0,) * len(reading.bm25)
        learned = probabilities(reading.learned, self.learned_sharpness) or [0.0] * (len(reading.bm25) + 1)
        scores = [
            (bm25 / best_bm25 if best_bm25 > 0 else 0.0)
            + self.char_weight * chars
            + self.likeness_weight * like
            + self.learned_weight * probability
            for bm25, chars, like, probability in zip(reading.bm25, reading.characters, likeness, learned, strict=False)
        ]
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        if not order or scores[order[0]] <= 0:
            return Verdict(order, scores, None, True)
        best = order[0]
        runner_up = scores[order[1]] if len(order) > 1 else 0.0
        total = covered = 0.0
        anchored = core = False
        for word in reading.words:
            if word.specificity is None:
                weight = self.unknown
            else:
                weight = min(max(word.specificity, self.known_floor), self.known_ceiling)
            core = core or word.core
            if word.short:
                weight *= self.short_word
            total += weight
            if best in word.topics:
                covered += weight
                anchored = anchored or word.anchors.get(best, 0.0) > self.anchor_specificity
        # All but word for word one of a topic's examples: that topic, whatever the words' ranking says.
        echoed = max(range(len(reading.characters)), key=lambda i: reading.characters[i])
        if reading.characters[echoed] >= self.echo:
            order.remove(echoed)
            scores[echoed] = max(scores[echoed], scores[best])
            return Verdict([echoed, *order], scores, echoed, False)
        ours = any(word.ours for word in reading.words)
        if any(word.elsewhere for word in reading.words) and not ours:
            return Verdict(order, scores, None, True)
        # "How do I assign this lead", "怎么导出报表": how to use another part of the CRM, not how to get in
        # ("how do I create a new password" is).
        signing_in = core or any(word.credential for word in reading.words)
        # Expenses, pay, the canteen: office matters, unless the message is about getting into the CRM too.
        if not signing_in and not ours and any(word.office for word in reading.words):
            return Verdict(order, scores, None, True)
        if reading.how_to and not signing_in and any(word.task for word in reading.words):
            return Verdict(order, scores, None, True)
        # Most like a message the bot is not for (another CRM feature, another system's password, small talk),
        # and not about being locked out: off-topic, whatever words it shares with a topic.
        # The learned layer is sure enough it is none of the topics.
        if not core and learned[-1] >= self.learned_off_topic:
            return Verdict(order, scores, None, True)
        off_topic = reading.off_topic_likeness
        if not core and off_topic >= self.off_topic_floor and off_topic > self.off_topic_lead * max(likeness):
            return Verdict(order, scores, None, True)
        coverage = self.core_coverage if core else self.coverage
        leads = scores[best] > self.margin * runner_up
        confident = anchored and covered >= coverage * total and leads
        # Or the learned layer is sure enough of the best topic.
        confident = (confident or learned[best] >= self.learned_answer) and leads
        # But not while the learned layer finds off-topic that much likelier than the best topic, unless the
        # question names the subject ("a question about the CRM" is not a question about usage counts).
        if not core and learned[-1] > self.learned_veto * learned[best]:
            confident = False
        if confident:
            return Verdict(order, scores, best, False)
        off_topic = not core and covered < self.in_domain * total and max(reading.characters) < self.char_floor
        return Verdict(order, scores, None, off_topic)


# --- the index --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _TopicTerms:
    all: frozenset[str]
    anchors: frozenset[str]
    frequency: dict[str, float] = field(default_factory=dict)
    length: float = 0.0


# Indexes built in this process, by folder, rule and the state of the folder's files; the oldest go first.
_LOADED: dict[tuple[object, ...], FaqIndex] = {}
_LOADED_KEPT = 8


class FaqIndex:
    """The FAQ topics, ready to be searched. Build it once at start and share it: ``search`` only reads."""

    def __init__(
        self,
        topics: Mapping[str, Topic],
        analyzer: Analyzer,
        rule: ConfidenceRule,
        roles: Roles | None = None,
        off_topic: Mapping[str, Sequence[str]] | None = None,
        training: Training = (),
    ) -> None:
        self._topics = dict(topics)
        self._roles = roles or Roles()
        self._ids = list(topics)
        self._analyzer = analyzer
        self.rule = rule
        self._terms: list[_TopicTerms] = []
        texts: list[str] = []
        owners: list[int] = []
        examples: list[tuple[list[str], str, int]] = []
        for number, topic in enumerate(topics.values()):
            fields = {
                "keywords": [k for locale in LOCALES for k in topic.keywords[locale]],
                "title": [topic.title[locale] for locale in LOCALES],
                "questions": [q for locale in LOCALES for q in topic.questions[locale]],
            }
            terms = {name: [t for text in items for t in analyzer.terms(text)] for name, items in fields.items()}
            topic_terms = _TopicTerms(
                frozenset(t for items in terms.values() for t in items),
                frozenset(terms["keywords"] + terms["title"]),
            )
            for name, weight in FIELD_WEIGHTS.items():
                for term in terms[name]:
                    topic_terms.frequency[term] = topic_terms.frequency.get(term, 0.0) + weight
            topic_terms.length = sum(topic_terms.frequency.values())
            self._terms.append(topic_terms)
            for text in fields["title"] + fields["questions"]:
                texts.append(analyzer.expand(text))
                owners.append(number)
                examples.append((analyzer.terms(text), texts[-1], number))
        count = len(self._ids)
        documents: dict[str, float] = {}
        for topic_terms in self._terms:
            for term in topic_terms.all:
                # A topic that only mentions a word in passing, in an example question, shares it less than
                # one that names it as a keyword or in its title: "why" belongs to why-locked, even though
                # "is that why?" is asked about the network too.
                share = 1.0 if term in topic_terms.anchors else QUESTION_ONLY_SHARE
                documents[term] = documents.get(term, 0.0) + share
        # BM25's inverse document frequency; the same number says how specific a word is to few topics.
        self._specificity = {t: math.log(1 + (count - n + 0.5) / (n + 0.5)) for t, n in documents.items()}
        average = sum(t.length for t in self._terms) / count
        # Each term's BM25 weight in each topic, worked out once: a look-up only adds them up.
        self._weights: dict[str, list[tuple[int, float]]] = {}
        for number, topic_terms in enumerate(self._terms):
            norm = BM25_K1 * (1 - BM25_B + BM25_B * topic_terms.length / average)
            for term, tf in topic_terms.frequency.items():
                weight = self._specificity[term] * tf * (BM25_K1 + 1) / (tf + norm)
                self._weights.setdefault(term, []).append((number, weight))
        self._ngrams = NgramIndex(texts, owners)
        # The example layer learns from the same texts, plus the off-topic examples as one more class.
        examples += [
            (analyzer.terms(text), analyzer.expand(text), count)
            for locale in LOCALES
            for text in (off_topic or {}).get(locale, ())
        ]
        self._intent = IntentModel(examples, count + 1)
        # The learned layer counts the same texts, plus the training questions of ``knowledge/training/``.
        numbers = {topic_id: number for number, topic_id in enumerate(self._ids)}
        examples += [
            (analyzer.terms(text), analyzer.expand(text), numbers[topic_id] if topic_id else count)
            for text, topic_id in training
        ]
        self._learned = LearnedModel(examples, count + 1)
        # Which topics use each term, and which name it as a keyword or in the title.
        self._users: dict[str, list[int]] = {}
        self._anchored: dict[str, list[int]] = {}
        for number, topic_terms in enumerate(self._terms):
            for term in topic_terms.all:
                self._users.setdefault(term, []).append(number)
            for term in topic_terms.anchors:
                self._anchored.setdefault(term, []).append(number)

    @classmethod
    def build(
        cls,
        topics: Mapping[str, Topic],
        synonyms: Synonyms = (),
        rule: ConfidenceRule | None = None,
        shorthand: Shorthand | None = None,
        roles: Roles | None = None,
        off_topic: Mapping[str, Sequence[str]] | None = None,
        training: Training = (),
    ) -> FaqIndex:
        """Index every topic's title, example questions and keywords in both languages, and the off-topic examples."""
        if not topics:
            raise ConfigError("the FAQ index needs at least one topic")
        keywords = [k for topic in topics.values() for locale in LOCALES for k in topic.keywords[locale]]
        texts = [
            text
            for topic in topics.values()
            for locale in LOCALES
            for text in (topic.title[locale], *topic.questions[locale])
        ]
        analyzer = Analyzer(synonyms, keywords, texts, shorthand)
        return cls(topics, analyzer, rule or ConfidenceRule(), roles, off_topic, training)

    @classmethod
    def load(cls, knowledge_dir: Path, rule: ConfidenceRule | None = None) -> FaqIndex:
        """Load the topics, ``synonyms.yaml``, ``shorthand.yaml`` and ``off_topic.yaml`` from the folder; index them.

        An index is read-only once built, so a folder whose files have not changed since it was last loaded in
        this process gives the same index again (several apps in one process share it; an edit is seen).
        """
        folder = knowledge_dir.resolve()
        files = tuple(
            (str(path), stat.st_size, stat.st_mtime_ns)
            for path in sorted(folder.rglob("*"))
            if path.is_file() and (stat := path.stat())
        )
        key = (cls, folder, rule, files)
        if key not in _LOADED:
            while len(_LOADED) >= _LOADED_KEPT:
                del _LOADED[next(iter(_LOADED))]
            _LOADED[key] = cls._read(folder, rule)
        return _LOADED[key]

    @classmethod
    def _read(cls, knowledge_dir: Path, rule: ConfidenceRule | None) -> FaqIndex:
        topics = load_topics(knowledge_dir / "topics")
        synonyms = load_synonyms(knowledge_dir / "synonyms.yaml")
        roles = load_roles(knowledge_dir / "synonyms.yaml", synonyms)
        shorthand = Shorthand.load(knowledge_dir / "shorthand.yaml")
        off_topic = load_off_topic(knowledge_dir / "off_topic.yaml")
        training = load_training(knowledge_dir / "training", set(topics))
        return cls.build(topics, synonyms, rule, shorthand, roles, off_topic, training)

    @property
    def topics(self) -> Mapping[str, Topic]:
        return self._topics

    @property
    def analyzer(self) -> Analyzer:
        return self._analyzer

    def read(self, text: str) -> Reading:
        """What the rule needs to know about ``text``: its content words and both layers' scores."""
        question = _CONTROL.sub(" ", text[:MAX_QUESTION_CHARS])
        units, meant = self._analyzer.read(question)
        count = len(self._ids)
        bm25 = [0.0] * count
        for term in {term for unit in units for term in unit.terms}:
            for number, weight in self._weights.get(term, ()):
                bm25[number] += weight
        words = tuple(self._word(unit) for unit in units)
        if not words:
            # Nothing but function words ("hi", "你好", "???"): no layer has anything to go on.
            return Reading((), tuple(bm25), (0.0,) * count)
        # The letters are compared as meant: a slip corrected above ("falut", "解琐") is not held against it.
        expanded = meant
        characters = self._ngrams.best_per_owner(expanded, count)
        terms = [term for unit in units for term in unit.terms]
        likeness = self._intent.neighbours(terms, expanded)
        how_to = _HOW_TO.search(expanded) is not None
        learned = tuple(self._learned.scores(terms, expanded))
        return Reading(words, tuple(bm25), tuple(characters), tuple(likeness[:count]), likeness[count], how_to, learned)

    def _word(self, unit: Unit) -> Word:
        known = [self._specificity[t] for t in unit.terms if t in self._specificity]
        topics = frozenset(n for t in unit.terms for n in self._users.get(t, ()))
        anchors: dict[int, float] = {}
        for term in unit.terms:
            for number in self._anchored.get(term, ()):
                anchors[number] = max(anchors.get(number, 0.0), self._specificity[term])
        return Word(
            short=(len(unit.text) == 1 and is_han(unit.text)) or (not known and len(unit.text) <= 3),
            corrected=unit.corrected,
            core=any(t in self._roles.core for t in unit.terms),
            ours=any(t in self._roles.ours for t in unit.terms),
            elsewhere=any(t in self._roles.elsewhere for t in unit.terms),
            # A word only guessed from a slip ("再出" read as 导出) is too weak a sign to turn a question away.
            task=not unit.corrected and any(t in self._roles.tasks for t in unit.terms),
            credential=any(t in self._roles.credentials for t in unit.terms),
            office=any(t in self._roles.office for t in unit.terms),
            specificity=max(known, default=None),
            topics=topics,
            anchors=anchors,
        )

    def search(self, text: str, locale: str | None = None) -> FaqResult:
        """Rank the topics for ``text``; ``answer_id`` is set only when the best one is a confident answer."""
        question = _CONTROL.sub(" ", text[:MAX_QUESTION_CHARS])
        locale = locale or guess_locale(question) or LOCALE_EN
        verdict = self.rule.judge(self.read(question))
        matches = [
            Match(self._ids[i], verdict.scores[i], self._topics[self._ids[i]].title[locale])
            for i in verdict.order[:TOP_MATCHES]
            if verdict.scores[i] > 0
        ]
        answer = self._ids[verdict.answer] if verdict.answer is not None else None
        return FaqResult(text, locale, answer, matches, off_topic=answer is None and (verdict.off_topic or not matches))
