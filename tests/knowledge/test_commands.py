"""Typed commands: a short imperative is a command, a question that contains a command's words is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.flows import ACTIONS
from bot.knowledge.commands import CommandMatcher

KNOWLEDGE = Path(__file__).resolve().parents[2] / "knowledge"


@pytest.fixture(scope="module")
def commands() -> CommandMatcher:
    return CommandMatcher.load(KNOWLEDGE / "commands.yaml", ACTIONS.keys())


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("解锁", "unlock"),
        ("帮我解锁", "unlock"),
        ("麻烦帮我把账号解锁一下", "unlock"),
        ("可以帮我解锁吗", "unlock"),
        ("我要申请解锁", "unlock"),
        ("帮我unlock一下", "unlock"),
        ("unlock me pls", "unlock"),
        ("unlock my account please", "unlock"),
        ("Could you unlock my account?", "unlock"),
        ("UNLOCK ME!!", "unlock"),
        ("为什么被锁", "why"),
        ("我为什么被锁了啊", "why"),
        ("why am I locked out?", "why"),
        ("hello, why am i locked", "why"),
        ("y am i locked", "why"),
        ("is my data safe?", "data"),
        ("菜单", "menu"),
        ("cancel", "cancel"),
        ("nvm", "cancel"),
    ],
)
def test_a_short_imperative_is_a_command(commands: CommandMatcher, text: str, action: str) -> None:
    assert commands.match(text) == action


@pytest.mark.parametrize(
    "text",
    [
        "解锁以后要检查什么",
        "解锁后要改密码吗",
        "解锁需要管理员批准吗",
        "how do I stop getting locked",
        "how do i unlock",
        "can I unlock it myself or does an admin have to",
        "my network is slow today",
        "我的数据安全吗？会丢吗",
        "why not",
        "what date is it",
    ],
)
def test_a_question_that_contains_a_command_is_not_one(commands: CommandMatcher, text: str) -> None:
    assert commands.match(text) is None


@pytest.mark.parametrize(
    ("text", "action"),
    [("unlcok me", "unlock"), ("unlock me plz", "unlock"), ("why am i lockd", "why"), ("cancle", "cancel")],
)
def test_a_slip_in_a_typed_command_is_forgiven(commands: CommandMatcher, text: str, action: str) -> None:
    assert commands.match(text) == action


def test_exact_means_the_whole_message_and_nothing_else(commands: CommandMatcher) -> None:
    assert commands.exact("Cancel!") == "cancel"
    assert commands.exact("please cancel") is None
    # In a step that waits for a reason, a sentence that starts with a command word is the reason.
    assert commands.exact("请先取消共享再申请") is None


@pytest.mark.parametrize("text", ["", "   ", "!!!", "😀"])
def test_nothing_to_read_is_no_command(commands: CommandMatcher, text: str) -> None:
    assert commands.match(text) is None


def test_phrases_for_an_unknown_action_stop_the_start(tmp_path: Path) -> None:
    path = tmp_path / "commands.yaml"
    path.write_text("dance:\n  zh-CN: [跳舞]\n  en: [dance]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"entry 'dance': unknown action"):
        CommandMatcher.load(path, ACTIONS.keys())


def test_a_command_file_missing_a_locale_is_named(tmp_path: Path) -> None:
    path = tmp_path / "commands.yaml"
    path.write_text("unlock:\n  en: [unlock]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"expected phrases for exactly"):
        CommandMatcher.load(path, ACTIONS.keys())
