"""The menu, the language choice, and leaving a flow."""

from __future__ import annotations

from bot.flows.base import Flow, Outcome, Turn
from bot.messages import LOCALES, Button, Reply

MENU_BUTTONS = (
    Button("why", "why"),
    Button("unlock", "unlock"),
    Button("data", "data"),
    Button("network", "network"),
    Button("lang", "language"),
)


def menu_reply(turn: Turn, template: str = "menu/greeting") -> Reply:
    return Reply(template, {"username": turn.username}, buttons=MENU_BUTTONS)


async def show_menu(turn: Turn) -> Outcome:
    return Outcome([menu_reply(turn)])


async def cancel(turn: Turn) -> Outcome:
    return Outcome([menu_reply(turn, "menu/cancelled")])


async def ask_language(turn: Turn) -> Outcome:
    buttons = tuple(Button(f"lang:{locale}", f"lang_{locale}") for locale in LOCALES)
    return Outcome([Reply("menu/language", buttons=buttons)], step="choose")


async def choose_language(turn: Turn) -> Outcome:
    locale = turn.button.removeprefix("lang:")
    if locale not in LOCALES:
        return await ask_language(turn)
    return Outcome([Reply("menu/language_set", buttons=MENU_BUTTONS)], locale=locale)


MENU = Flow("menu", start=show_menu)
CANCEL = Flow("cancel", start=cancel)
LANGUAGE = Flow("language", start=ask_language, steps={"choose": choose_language})
