"""Becoming known to the bot: redeem a link code, then enrol an authenticator app."""

from __future__ import annotations

from bot.flows.base import Flow, Outcome, Turn
from bot.flows.menu import CANCEL, MENU_BUTTONS
from bot.flows.verification import check_code
from bot.identity import enrolment, link_codes
from bot.messages import Reply


async def redeem_link_code(turn: Turn) -> Outcome:
    """The text is a link code: bind this chat account, then go on to enrolment if needed."""
    identity = await link_codes.redeem(
        turn.session,
        now=turn.now,
        code=turn.text,
        channel=turn.inbound.channel,
        team_id=turn.inbound.team_id,
        user_id=turn.inbound.user_id,
    )
    if identity is None:
        # The same answer for a wrong, used or expired code: guessing learns nothing.
        return Outcome([Reply("link/refused", buttons=MENU_BUTTONS)])
    turn.username = identity.crm_username
    if await turn.services.totp.is_enrolled(turn.session, identity.crm_username):
        return Outcome([Reply("link/done", {"username": identity.crm_username, "enrolled": True}, MENU_BUTTONS)])
    return Outcome([Reply("link/done", {"username": identity.crm_username, "enrolled": False})], then="enrol")


async def start_enrolment(turn: Turn) -> Outcome:
    username = turn.require_user()
    if await turn.services.totp.is_enrolled(turn.session, username):
        return Outcome([Reply("enrol/already", buttons=MENU_BUTTONS)])
    provisioning = await enrolment.begin(
        turn.services.totp,
        turn.session,
        username=username,
        account=username,
        issuer=turn.services.issuer,
        actor=turn.actor,
    )
    # The secret travels only inside the image, which is never stored with the conversation.
    scan = Reply(
        "enrol/scan",
        {"issuer": turn.services.issuer, "account": username},
        buttons=(CANCEL,),
        image=provisioning.image,
        secret_input=True,
    )
    return Outcome([scan], step="confirm")


async def confirm_enrolment(turn: Turn) -> Outcome:
    refused = await check_code(turn, step="confirm", confirming=True)
    if refused is not None:
        return refused
    return Outcome([Reply("enrol/done", buttons=MENU_BUTTONS)])


LINK = Flow("link", start=redeem_link_code)
ENROL = Flow("enrol", start=start_enrolment, steps={"confirm": confirm_enrolment}, takes_text=frozenset({"confirm"}))
