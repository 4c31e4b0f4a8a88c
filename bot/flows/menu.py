"""The menu, the language choice, and leaving a flow."""

from __future__ import annotations

from bot.flows.base import Flow, Outcome, Turn
from bot.messages import LOCALES, Button, Reply
from bot.requests.unlock_requests import open_request

MENU = Button("menu", "menu")
CANCEL = Button("cancel", "cancel")
MENU_BUTTONS = (
    Button("why", "why"),
    Button("unlock", "unlock"),
    Button("data", "data"),
    Button("network", "network"),
    Button("ask", "ask"),
    Button("lang", "language"),
)


ADMIN_BUTTONS = (Button("pending", "pending"), *MENU_BUTTONS)


def menu_buttons(turn: Turn) -> tuple[Button, ...]:
    return ADMIN_BUTTONS if turn.is_admin else MENU_BUTTONS


def menu_reply(turn: Turn, template: str = "menu/greeting", waiting: dict[str, object] | None = None) -> Reply:
    context = {"username": turn.username, "admin": turn.is_admin, "waiting": waiting}
    return Reply(template, context, buttons=menu_buttons(turn))


async def show_menu(turn: Turn) -> Outcome:
    waiting = None
    if turn.username is not None:
        request = await open_request(turn.session, turn.username)
        if request is not None:
            waiting = {"id": request.id, "status": request.status}
    return Outcome([menu_reply(turn, waiting=waiting)])


async def cancel(turn: Turn) -> Outcome:
    return Outcome([menu_reply(turn, "menu/cancelled")])


async def ask_language(turn: Turn) -> Outcome:
    buttons = tuple(Button(f"setlang:{locale}", f"lang_{locale}") for locale in LOCALES)
    return Outcome([Reply("menu/language", buttons=buttons)])


async def choose_language(turn: Turn) -> Outcome:
    if turn.argument not in LOCALES:
        return await ask_language(turn)
    return Outcome([Reply("menu/language_set", buttons=menu_buttons(turn))], locale=turn.argument)


MENU_FLOW = Flow("menu", start=show_menu)
CANCEL_FLOW = Flow("cancel", start=cancel)
LANGUAGE = Flow("language", start=ask_language)
SET_LANGUAGE = Flow("set_language", start=choose_language)
