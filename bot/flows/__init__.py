"""The conversations, as data: which action starts which flow.

A button's action, or a typed command that names one, starts the flow here;
anything else goes to the step the conversation is waiting in.
"""

from collections.abc import Mapping

from bot.flows.admin import ADMIN_COMMAND, STATS
from bot.flows.alerts import ALERTS_OFF, ALERTS_ON
from bot.flows.base import END, TIMEOUT, Flow, FlowError, Handler, Outcome, Services, Turn, check_steps
from bot.flows.decisions import ANSWER, APPROVE, DENY, PENDING_FLOW
from bot.flows.diagnose import DETAILS, DIAGNOSE, WATCH
from bot.flows.faq import ASK, FAQ
from bot.flows.identity import ENROL, LINK
from bot.flows.menu import CANCEL_FLOW, LANGUAGE, MENU_FLOW, SET_LANGUAGE
from bot.flows.network import NETWORK
from bot.flows.questions import (
    DATA_SAFETY,
    IMPACT,
    MAINTENANCE,
    NORMAL_OR_ABNORMAL,
    RECEIVE_INFO,
    SYSTEM_FAULT,
    USAGE,
)
from bot.flows.request_status import REQUEST_STATUS
from bot.flows.sign_in import SIGN_IN
from bot.flows.unlock import RESET_PASSWORD, UNLOCK, WITHDRAW
from bot.flows.when_back import WHEN_BACK

# Actions that start a flow, whatever step the conversation is in. A button
# can only be pressed while it is on offer, so "details" needs "why" first.
# An action may carry an argument after a colon ("approve:12"); the part
# before the colon picks the flow. Actions whose name is not here ("net:yes")
# belong to the step the conversation waits in.
ACTIONS: Mapping[str, Flow] = {
    "menu": MENU_FLOW,
    "cancel": CANCEL_FLOW,
    "lang": LANGUAGE,
    "setlang": SET_LANGUAGE,
    "why": DIAGNOSE,
    "details": DETAILS,
    "watch": WATCH,
    "unlock": UNLOCK,
    "reset_password": RESET_PASSWORD,
    "data": DATA_SAFETY,
    "network": NETWORK,
    "receive": RECEIVE_INFO,
    "normal": NORMAL_OR_ABNORMAL,
    "maintenance": MAINTENANCE,
    "enrol": ENROL,
    "ask": ASK,
    "faq": FAQ,
    "withdraw": WITHDRAW,
    "pending": PENDING_FLOW,
    "approve": APPROVE,
    "deny": DENY,
    "answer": ANSWER,
    "stats": STATS,
    # Worries answered from the person's own situation (bot.flows.situation).
    "request_status": REQUEST_STATUS,
    "sign_in": SIGN_IN,
    "when_back": WHEN_BACK,
    "impact": IMPACT,
    "usage": USAGE,
    "fault": SYSTEM_FAULT,
    # Messages the bot sends unasked (lock alerts, maintenance notices): stopped and started per person.
    "alerts_off": ALERTS_OFF,
    "alerts_on": ALERTS_ON,
    # Never offered as buttons: the engine starts them for a link code and for an admin's typed command.
    "link": LINK,
    "admin": ADMIN_COMMAND,
}

FLOWS: Mapping[str, Flow] = {flow.name: flow for flow in ACTIONS.values()}
check_steps(FLOWS.values())

__all__ = ["ACTIONS", "END", "FLOWS", "TIMEOUT", "Flow", "FlowError", "Handler", "Outcome", "Services", "Turn"]
