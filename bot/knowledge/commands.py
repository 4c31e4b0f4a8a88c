"""Typed commands ("unlock me", "帮我解锁"): phrases from ``knowledge/commands.yaml`` mapped to actions.

A message is a command only when it is a command phrase and nothing else but politeness and filler:
"unlock me pls", "could you unlock my account", "麻烦帮我解锁一下". A message that says more than that is a
question, even when it contains a phrase: "解锁以后要检查什么" asks about after-unlock checks and goes to the
FAQ, as does "how do I stop getting locked". Chat shorthand is spelled out first (``knowledge/shorthand.yaml``,
so "y am i locked" is "why am i locked"), and a slip in an English word of the phrases is forgiven ("unlcok
me", "why am i lockd").
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from bot.errors import ConfigError
from bot.knowledge.files import read_yaml
from bot.knowledge.wording import Shorthand, Speller, normalise
from bot.language import HAN_CHARACTERS, is_han
from bot.messages import LOCALES

_PUNCTUATION = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")
# One Latin word (letters and digits) or one Han character: the units a phrase is matched in.
_TOKEN = re.compile(f"[a-z0-9]+|[{HAN_CHARACTERS}]")


# What may surround a command phrase without making the message a question: asking nicely, naming whose
# account, urgency, greetings, thanks. Nothing here may carry a question of its own ("how", "what", "when").
def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


FILLER_EN = _word_set(
    """
    please kindly can could would will you me my i im am want wanna to need the a an now right asap just quickly
    quick again account crm thanks thank thx hi hey hello ok okay so and then help bot mate yes yeah it for this
    do go let lets us our we of in on up
    """
)
FILLER_ZH = _word_set(
    """
    请 请你 麻烦 麻烦你 帮 帮我 帮忙 给我 替我 你 您 我 我的 我要 我想 想 要 一下 下 吧 呗 啊 呀 哦 了 吗 呢 嘛 啦 哈
    谢谢 谢了 多谢 快 快点 赶紧 马上 立刻 现在 能 能不能 可以 可不可以 可以吗 好吗 行吗 账号 账户 帐号 号 的 把 给 再
    一次 好不好 你好 您好 尽快 赶快 喂 嗯 诶 哎
    """
)
_LONGEST_FILLER_ZH = max(map(len, FILLER_ZH))


def normalise_command(text: str, shorthand: Shorthand | None = None) -> str:
    """Case, full-width forms and punctuation dropped, shorthand spelled out, spaces collapsed."""
    text = normalise(text)
    if shorthand is not None:
        text = shorthand.expand(text)
    return _SPACES.sub(" ", _PUNCTUATION.sub(" ", text.replace("'", ""))).strip()


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


class CommandMatcher:
    """Finds the action a typed message names, if the message is nothing but a command."""

    def __init__(self, phrases: Mapping[str, Collection[str]], shorthand: Shorthand | None = None) -> None:
        self._shorthand = shorthand or Shorthand.none()
        self._exact: dict[str, str] = {}
        self._phrases: list[tuple[tuple[str, ...], str]] = []
        words: list[str] = list(FILLER_EN)
        for action, items in phrases.items():
            for phrase in items:
                key = normalise_command(phrase)
                self._exact.setdefault(key, action)
                tokens = tuple(_tokens(key))
                if tokens:
                    self._phrases.append((tokens, action))
                    words += [token for token in tokens if not is_han(token)]
        # Longest first: "unlock my account" is found before "unlock" could leave "my account" behind.
        self._phrases.sort(key=lambda item: len(item[0]), reverse=True)
        self._speller = Speller(words)

    def exact(self, text: str) -> str | None:
        """The action only when the whole message is one of its phrases."""
        return self._exact.get(normalise_command(text, self._shorthand))

    def match(self, text: str) -> str | None:
        """The action the message names, when it is a command phrase plus filler at most."""
        key = normalise_command(text, self._shorthand)
        if not key:
            return None
        if key in self._exact:
            return self._exact[key]
        tokens = [self._speller.correct(token) or token for token in _tokens(key)]
        for phrase, action in self._phrases:
            start = _find(tokens, phrase)
            if start is not None and _only_filler([*tokens[:start], *tokens[start + len(phrase) :]]):
                return action
        return None

    @classmethod
    def load(cls, path: Path, actions: Collection[str]) -> CommandMatcher:
        """Read ``commands.yaml`` (and ``shorthand.yaml`` beside it, when there is one)."""
        raw = read_yaml(path)
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of actions to phrases")
        phrases: dict[str, list[str]] = {}
        for action, entry in raw.items():
            if action not in actions:
                raise ConfigError(f"{path}: entry {action!r}: unknown action; expected one of {sorted(actions)}")
            if not isinstance(entry, dict) or set(entry) != set(LOCALES):
                raise ConfigError(f"{path}: entry {action!r}: expected phrases for exactly {', '.join(LOCALES)}")
            items = [p for locale in LOCALES for p in entry[locale]]
            if not all(isinstance(p, str) and p.strip() for p in items):
                raise ConfigError(f"{path}: entry {action!r}: every phrase must be non-empty text")
            phrases[action] = items
        return cls(phrases, Shorthand.load(path.with_name("shorthand.yaml")))


def _find(tokens: Sequence[str], phrase: Sequence[str]) -> int | None:
    for start in range(len(tokens) - len(phrase) + 1):
        if tuple(tokens[start : start + len(phrase)]) == tuple(phrase):
            return start
    return None


def _only_filler(tokens: Sequence[str]) -> bool:
    """Whether what is left of a message besides its command phrase is politeness and filler only."""
    chinese = ""
    for token in [*tokens, ""]:
        if token and is_han(token):
            chinese += token
            continue
        if chinese and not _chinese_filler(chinese):
            return False
        chinese = ""
        if token and token not in FILLER_EN:
            return False
    return True


def _chinese_filler(text: str) -> bool:
    # Cut from the left, longest filler first; any character that starts no filler word makes it a question.
    position = 0
    while position < len(text):
        for size in range(min(_LONGEST_FILLER_ZH, len(text) - position), 0, -1):
            if text[position : position + size] in FILLER_ZH:
                position += size
                break
        else:
            return False
    return True
