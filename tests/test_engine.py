"""The engine: bad input, forged buttons, languages, restarts and redelivered events."""

from __future__ import annotations

from sqlalchemy import func, select

from bot import demo
from bot.app import App, open_app
from bot.clock import ManualClock
from bot.config import Settings
from bot.crm.sql_schema import CrmBase
from bot.engine import clean_text
from bot.language import guess_locale
from bot.storage.models import Conversation
from tests.chat import Chat


async def test_empty_text_gets_a_clear_reply_and_the_question_again(app: App) -> None:
    chat = Chat(app.engine, "alice", locale="en")
    await chat.start()
    said = await chat.say("   ")
    assert "I didn't get any text" in said.text
    assert said.labels[0] == "Why am I locked?"


async def test_ten_kilobytes_of_text_are_refused_politely(app: App) -> None:
    chat = Chat(app.engine, "alice", locale="en")
    await chat.start()
    said = await chat.say("a" * 10_000)
    assert "too long" in said.text
    assert "2000" in said.text


async def test_control_characters_are_dropped(app: App) -> None:
    assert clean_text("un\x00lock\x1b me\u200b") == "unlock me"
    assert clean_text("\x1b[31munlock me\x1b[0m") == "unlock me"
    chat = Chat(app.engine, "alice", locale="en")
    await chat.start()
    said = await chat.say("\x00\x07\x1b")
    assert "I didn't get any text" in said.text
    said = await chat.say("un\x00lock me")
    assert said.asks_secret


async def test_a_button_that_was_not_offered_is_refused(app: App) -> None:
    chat = Chat(app.engine, "alice", locale="en")
    await chat.start()
    said = await chat.press_action("reset_password")  # forged: only offered after an unlock
    assert "isn't one of the options" in said.text
    said = await chat.press_action("console:42")
    assert "isn't one of the options" in said.text
    assert await app.crm.lock_status("alice")


async def test_an_old_button_stops_working_once_replaced(app: App) -> None:
    chat = Chat(app.engine, "carol", locale="en")
    await chat.start()
    await chat.press("why")
    said = await chat.press_action("network")  # from the first menu, no longer on screen
    assert "isn't one of the options" in said.text


async def test_a_request_outside_the_crm_gets_one_plain_line_and_the_menu(app: App) -> None:
    chat = Chat(app.engine, "alice")
    said = await chat.say("明天上海天气怎么样")
    assert "只负责" in said.text
    assert "不太确定" not in said.text  # never an empty "is it one of these?"
    assert "我为什么被锁定了？" in said.labels


async def test_the_language_follows_the_script_until_chosen(app: App) -> None:
    assert guess_locale("为什么") == "zh-CN"
    assert guess_locale("why") == "en"
    assert guess_locale("123456") is None
    chat = Chat(app.engine, "carol")
    said = await chat.say("hello")
    assert "Hi carol" in said.text
    said = await chat.say("你好")
    assert "你好" in said.text
    await chat.press("语言 / Language")
    said = await chat.press("English")
    assert "I'll speak English" in said.text
    said = await chat.say("你好")
    assert "Hi carol" in said.text  # chosen, so Chinese text no longer switches it


async def test_platform_commands_act_whatever_the_step_and_keep_the_language(app: App) -> None:
    chat = Chat(app.engine, "alice", locale="zh-CN")
    await chat.start()
    said = await chat.command("unlock")
    assert said.asks_secret
    said = await chat.command("cancel")  # at the code prompt: the command, never taken as the code
    assert not said.asks_secret
    said = await chat.command("why")
    assert "密码" in said.text
    said = await chat.command("faq", "is my data safe?")  # a question typed after /faq is read as typed
    assert "data" in said.text.lower()
    said = await chat.command("menu")
    assert said.labels
    said = await chat.command("approve")  # not a command a platform may send
    assert "这个选项现在不可用" in said.text
    async with app.database.session() as session:
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 1


async def test_a_restart_resumes_the_same_step(settings: Settings, clock: ManualClock) -> None:
    async with open_app(settings, clock=clock) as first:
        await demo.seed(first, reset=True)
        chat = Chat(first.engine, "alice", locale="en")
        await chat.start()
        said = await chat.press("Unlock me")
        assert said.asks_secret
    async with open_app(settings, clock=clock) as second:
        chat = Chat(second.engine, "alice", locale="en")
        said = await chat.start()
        assert "Welcome back" in said.text
        assert said.asks_secret
        said = await chat.say(await demo.current_code(second, "alice"))
        assert "unlocked" in said.text


async def test_a_redelivered_event_is_handled_once(app: App) -> None:
    chat = Chat(app.engine, "alice", locale="en")
    await chat.start()
    first = await chat.say("unlock me", event_id="evt-1")
    assert first.asks_secret
    again = await chat.say("unlock me", event_id="evt-1")
    assert again.replies == []


async def test_one_conversation_per_person_and_channel(app: App) -> None:
    await Chat(app.engine, "alice", channel="console").start()
    await Chat(app.engine, "alice", channel="telegram").start()
    await Chat(app.engine, "alice", channel="console").say("menu")
    async with app.database.session() as session:
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 2


async def test_a_backend_failure_is_explained_without_a_traceback(app: App) -> None:
    chat = Chat(app.engine, "alice", locale="zh-CN")
    await chat.start()
    # Break the CRM behind the bot's back: its tables are gone.
    async with app.crm.database.engine.begin() as connection:  # type: ignore[attr-defined]
        await connection.run_sync(CrmBase.metadata.drop_all)
    said = await chat.press("why")
    assert "Traceback" not in said.text
    assert "什么都没有改动" in said.text
    said = await chat.press("是我的网络问题吗？")  # the menu offered with the apology works
    assert "CRM 目前没有响应" in said.text
