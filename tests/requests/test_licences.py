"""The admins hear before a licence or trial ends, once per step, and when its seats are nearly all taken."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.app import App
from bot.clock import ManualClock
from bot.messages import Reply
from bot.storage.models import Notification
from tests.chat import Chat


async def reminders(app: App) -> list[Notification]:
    async with app.database.session() as session:
        found = await session.scalars(
            select(Notification)
            .where(Notification.template.in_(["admin/licence_ending", "admin/seats_nearly_full"]))
            .order_by(Notification.id)
        )
        return list(found)


async def test_one_housekeeping_pass_reminds_the_admins_once_and_a_second_does_not(
    app: App, clock: ManualClock
) -> None:
    await app.housekeeper.tick()
    told = await reminders(app)
    ending = {(n.crm_username, n.context["name"]) for n in told if n.template == "admin/licence_ending"}
    # The demo's Service Desk licence ends in 20 days and its trial in 9: the 30-day step, for both admins.
    assert ending == {(admin, name) for admin in ("sam", "tina") for name in ("Service Desk", "Marketing Trial")}
    seats = {n.context["name"] for n in told if n.template == "admin/seats_nearly_full"}
    assert seats == {"Sales Standard"}  # more people on it than seats
    service_desk = next(n for n in told if n.context["name"] == "Service Desk")
    assert service_desk.context["days"] == 20

    clock.advance(timedelta(hours=2))  # the next look at the licences
    await app.housekeeper.tick()
    assert len(await reminders(app)) == len(told)  # nothing twice

    clock.advance(timedelta(days=13, hours=1))  # 7 days before Service Desk ends: the next step
    await app.housekeeper.tick()
    later = [n for n in await reminders(app) if n.id > told[-1].id]
    assert {
        (n.crm_username, n.context["name"], n.context["days"]) for n in later if n.context["name"] == "Service Desk"
    } == {
        ("sam", "Service Desk", 7),
        ("tina", "Service Desk", 7),
    }

    for locale, words in (("en", "in 20 days"), ("zh-CN", "20 天后")):
        rendered = app.renderer.render(Reply(service_desk.template, service_desk.context), locale)
        assert words in rendered.text


async def test_the_licence_answer_says_whether_the_admins_really_are_reminded(app: App) -> None:
    kim = Chat(app.engine, "kim", locale="en")
    said = await kim.say("our licence expired")
    assert "the admins hear from me 30, 7 and 1 days before one ends" in said.text  # the embedded CRM lists them
    kim = Chat(app.engine, "kim", locale="zh-CN")
    said = await kim.say("授权过期了")
    assert "到期前 30 天、7 天和 1 天我都会提醒管理员" in said.text

    # A CRM that cannot list its licences, or nobody to tell: the answer says so instead of promising.
    cannot = app.renderer.render(Reply("faq/answer", {"topic": "license", "reminders": "no_list"}), "en").text
    assert "this CRM doesn't let me list its licences, so nobody hears from me before one ends" in cannot
    assert "Here I do" not in cannot
    nobody = app.renderer.render(Reply("faq/answer", {"topic": "license", "reminders": "no_admins"}), "zh-CN").text
    assert "还没有设置接收提醒的管理员" in nobody
