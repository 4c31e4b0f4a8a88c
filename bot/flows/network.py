"""Is it my network: first what the person's own lock says, then a probe from the server and the checklist.

When the CRM already names another reason for the lock (the licence, a fault,
wrong passwords, ...), the answer says so in one line and offers the checklist
only as an extra. Otherwise: a reachability probe of the CRM from the server,
open faults and how many others were locked, then the seed's checklist as
steps (other websites, the router or modem, a VPN, another network), ending
with where the problem most likely is and, for a lock caused by a dropped
session, the unlock.
"""

from __future__ import annotations

from bot.flows.base import Flow, Outcome, Turn
from bot.flows.menu import MENU, MENU_BUTTONS
from bot.flows.situation import Worry, WorryVerdict, next_step, read_situation, verdict
from bot.messages import Button, Reply


def question(name: str, *buttons: Button) -> Reply:
    return Reply(f"network/{name}", buttons=(*buttons, MENU))


ASK_WEB = question("ask_web", Button("net:yes", "yes_loads"), Button("net:no", "no_it_does_not"))
ASK_VPN = question("ask_vpn", Button("net:yes", "yes"), Button("net:no", "no"))
FIX_INTERNET = question("fix_internet", Button("net:yes", "works_now"), Button("net:no", "still_not"))
FIX_VPN = question("fix_vpn", Button("net:yes", "done"))
CHECK_ANYWAY = Button("net:check", "check_anyway")


async def start(turn: Turn) -> Outcome:
    situation = await read_situation(turn, probe=True, count_others=True)
    found = verdict(situation, Worry.NETWORK)
    if found.key == "not_network":
        buttons = (*next_step(situation), CHECK_ANYWAY, MENU)
        return Outcome([Reply("network/not_network", found.context(), buttons)], step="offer")
    return checklist(found)


async def on_offer(turn: Turn) -> Outcome:
    """The person heard it is not their network and wants their connection checked all the same."""
    return checklist(verdict(await read_situation(turn, probe=True, count_others=True), Worry.NETWORK))


def checklist(found: WorryVerdict) -> Outcome:
    probe = found.facts["probe"]
    # None: this backend cannot be probed, so the conclusion must claim neither way.
    reachable = None if probe is None else bool(probe["reachable"])
    return Outcome([Reply("network/probe", found.context()), ASK_WEB], step="web", data={"crm_reachable": reachable})


async def on_web(turn: Turn) -> Outcome:
    if turn.button == "net:no":
        return Outcome([FIX_INTERNET], step="internet", data=turn.data)
    return Outcome([ASK_VPN], step="vpn", data=turn.data)


async def on_internet(turn: Turn) -> Outcome:
    if turn.button == "net:no":
        return Outcome([Reply("network/offline", buttons=MENU_BUTTONS)])
    return Outcome([ASK_VPN], step="vpn", data=turn.data)


async def on_vpn(turn: Turn) -> Outcome:
    if turn.button == "net:yes":
        return Outcome([FIX_VPN], step="vpn_fixed", data=turn.data)
    return await conclude(turn)


async def on_vpn_fixed(turn: Turn) -> Outcome:
    return await conclude(turn)


async def conclude(turn: Turn) -> Outcome:
    """The person's connection works: say where the problem is, and what to do about the lock."""
    if turn.data.get("crm_reachable") is False:
        return Outcome([Reply("network/crm_down", buttons=MENU_BUTTONS)])
    situation = await read_situation(turn)
    found = verdict(situation, Worry.NETWORK)
    context = found.context(probed=turn.data.get("crm_reachable") is True)
    if found.key == "yours":
        return Outcome([Reply("network/session_dropped", context, (*next_step(situation), MENU))])
    buttons = (*next_step(situation), Button("why", "why"), MENU) if situation.locked else (*next_step(situation), MENU)
    return Outcome([Reply("network/fine", context, buttons)])


NETWORK = Flow(
    "network",
    start=start,
    steps={"offer": on_offer, "web": on_web, "internet": on_internet, "vpn": on_vpn, "vpn_fixed": on_vpn_fixed},
)
