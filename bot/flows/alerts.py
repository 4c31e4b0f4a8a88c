"""Stopping and restarting the messages the bot sends unasked ("stop alerts" / "不要再提醒", "start alerts")."""

from __future__ import annotations

from bot.flows.base import Flow, Outcome, Turn
from bot.flows.menu import MENU
from bot.messages import Button, Reply
from bot.requests.opt_outs import opt_in, opt_out


async def stop_alerts(turn: Turn) -> Outcome:
    username = turn.require_user()
    changed = await opt_out(turn.session, now=turn.now, username=username, actor=turn.actor)
    return Outcome([Reply("alerts/stopped", {"changed": changed}, buttons=(Button("alerts_on", "alerts_on"), MENU))])


async def start_alerts(turn: Turn) -> Outcome:
    username = turn.require_user()
    changed = await opt_in(turn.session, now=turn.now, username=username, actor=turn.actor)
    return Outcome([Reply("alerts/started", {"changed": changed}, buttons=(Button("alerts_off", "alerts_off"), MENU))])


ALERTS_OFF = Flow("alerts_off", start=stop_alerts)
ALERTS_ON = Flow("alerts_on", start=start_alerts)
