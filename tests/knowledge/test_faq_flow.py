"""Free questions in a chat: answered, offered as a short list when unsure, or told plainly what the bot is for."""

from __future__ import annotations

from bot.app import App
from tests.chat import Chat


async def test_an_off_topic_request_gets_one_line_and_the_menu(app: App) -> None:
    chat = Chat(app.engine, "kim", locale="en")
    await chat.start()
    said = await chat.say("what's the weather in Paris tomorrow?")
    assert said.text.startswith("Sorry, I can't help with that")
    assert "signing in to the CRM" in said.text
    assert "Is it one of these" not in said.text
    assert said.labels[0] == "Why am I locked?"
    assert "Ask a person" not in said.labels
    # The conversation is over: the next message is read afresh, not as a follow-up.
    said = await chat.say("is my data safe?")
    assert "Sorry" not in said.text


async def test_an_off_topic_request_in_chinese(app: App) -> None:
    chat = Chat(app.engine, "kim")
    said = await chat.say("帮我订一间周五的会议室")
    assert "我只负责CRM登录和账号锁定" in said.text
    assert "是下面这些问题之一吗" not in said.text


async def test_an_unsure_question_offers_topics_and_a_person(app: App) -> None:
    chat = Chat(app.engine, "kim", locale="en")
    await chat.start()
    said = await chat.say("a question about the CRM")
    assert "Is it one of these?" in said.text
    topics = [action for action in said.actions if action.startswith("faq:")]
    assert topics, said.actions
    assert "human" in said.actions


async def test_a_question_with_a_command_in_it_is_answered_as_a_question(app: App) -> None:
    chat = Chat(app.engine, "kim")
    said = await chat.say("解锁以后要检查什么")
    assert "解锁后需要检查什么" in said.text
    assert not said.asks_secret
