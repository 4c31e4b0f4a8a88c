"""Is it my network: a reachability probe from the server, others affected, then the checklist as steps.

The checklist follows the seed: other websites, the router or modem, a VPN,
another network. It ends by saying where the problem most likely is and, for
a lock caused by a dropped session, offering the unlock.
"""

from __future__ import annotations

from datetime import timedelta

from bot.crm.base import Capability, LockReason
from bot.flows.base import Flow, Outcome, Turn
from bot.flows.facts import plain
from bot.flows.menu import MENU, MENU_BUTTONS
from bot.messages import Button, Reply
from bot.requests.policy import Path

RECENT = timedelta(hours=1)


def question(name: str, *buttons: Button) -> Reply:
    return Reply(f"network/{name}", buttons=(*buttons, MENU))


ASK_WEB = question("ask_web", Button("net:yes", "yes_loads"), Button("net:no", "no_it_does_not"))
ASK_VPN = question("ask_vpn", Button("net:yes", "yes"), Button("net:no", "no"))
FIX_INTERNET = question("fix_internet", Button("net:yes", "works_now"), Button("net:no", "still_not"))
FIX_VPN = question("fix_vpn", Button("net:yes", "done"))


async def start(turn: Turn) -> Outcome:
    crm = turn.services.crm
    probe = await crm.probe() if Capability.PROBE in crm.capabilities else None
    others = None
    if Capability.LOCK_STATISTICS in crm.capabilities and (probe is None or probe.reachable):
        others = await crm.locks_since(turn.now - RECENT)
    facts = Reply(
        "network/probe",
        {"probe": plain(probe), "others_locked": others, "window_minutes": int(RECENT.total_seconds() // 60)},
    )
    return Outcome([facts, ASK_WEB], step="web", data={"crm_reachable": bool(probe and probe.reachable)})


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
    reachable = bool(turn.data.get("crm_reachable"))
    if not reachable:
        return Outcome([Reply("network/crm_down", buttons=MENU_BUTTONS)])
    if turn.username is None:
        return Outcome([Reply("network/fine", {"locked": False}, MENU_BUTTONS)])
    status = await turn.services.crm.lock_status(turn.username)
    if not status.locked or status.reason is None:
        return Outcome([Reply("network/fine", {"locked": False}, MENU_BUTTONS)])
    if status.reason is LockReason.NETWORK:
        rule = turn.services.policy.rule(status.reason)
        unlock = Button("unlock", "unlock" if rule.path is Path.SELF_SERVICE else "request_unlock")
        return Outcome([Reply("network/session_dropped", buttons=(unlock, MENU))])
    return Outcome([Reply("network/fine", {"locked": True}, (Button("why", "why"), MENU))])


NETWORK = Flow(
    "network",
    start=start,
    steps={"web": on_web, "internet": on_internet, "vpn": on_vpn, "vpn_fixed": on_vpn_fixed},
)
