"""The conversations, as data: which action starts which flow.

A button's action, or a typed command that names one, starts the flow here;
anything else goes to the step the conversation is waiting in.
"""

from collections.abc import Mapping

from bot.flows.base import Flow, Handler, Outcome, Services, Turn
from bot.flows.diagnose import DETAILS, DIAGNOSE
from bot.flows.identity import ENROL, LINK
from bot.flows.menu import CANCEL, LANGUAGE, MENU
from bot.flows.network import NETWORK
from bot.flows.questions import DATA_SAFETY, MAINTENANCE, NORMAL_OR_ABNORMAL, RECEIVE_INFO
from bot.flows.unlock import RESET_PASSWORD, UNLOCK

# Actions that start a flow, whatever step the conversation is in. A button
# can only be pressed while it is on offer, so "details" needs "why" first.
ACTIONS: Mapping[str, Flow] = {
    "menu": MENU,
    "cancel": CANCEL,
    "lang": LANGUAGE,
    "why": DIAGNOSE,
    "details": DETAILS,
    "unlock": UNLOCK,
    "reset_password": RESET_PASSWORD,
    "data": DATA_SAFETY,
    "network": NETWORK,
    "receive": RECEIVE_INFO,
    "normal": NORMAL_OR_ABNORMAL,
    "maintenance": MAINTENANCE,
    "enrol": ENROL,
    # Never offered as a button: the engine starts it when someone sends a link code.
    "link": LINK,
}

FLOWS: Mapping[str, Flow] = {flow.name: flow for flow in ACTIONS.values()}

__all__ = ["ACTIONS", "FLOWS", "Flow", "Handler", "Outcome", "Services", "Turn"]
