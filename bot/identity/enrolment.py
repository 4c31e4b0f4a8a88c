"""TOTP enrolment: a new secret per CRM user, shown once as a QR code, active after a first code.

The secret has 160 bits (RFC 4226's recommendation), the ``otpauth://`` URI
names the configured issuer and the account, the algorithm, the 30-second
period and the 6 digits, all spelled out rather than left to each app's
defaults. The QR code goes out as a PNG for chat apps and as text for terminals.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlencode

import pyotp
import segno
from sqlalchemy.ext.asyncio import AsyncSession

from bot.identity.totp import DIGITS, PERIOD, TotpVerifier
from bot.messages import Image
from bot.requests.notifications import notify

SECRET_LENGTH = 32  # base32 characters: 160 bits
ALGORITHM = "SHA1"  # what pyotp computes, and what RFC 6238 apps support everywhere


@dataclass(frozen=True, slots=True)
class Provisioning:
    """What the person needs to add the account to an authenticator app. Secret: never log it."""

    uri: str
    secret: str
    image: Image

    def __repr__(self) -> str:
        return "Provisioning(<secret hidden>)"


def otpauth_uri(secret: str, *, account: str, issuer: str) -> str:
    """The Key URI of Google Authenticator's format, with every parameter written out."""
    # pyotp leaves out digits and period when they equal the defaults; an app that assumes other
    # defaults would then show codes the bot never accepts.
    label = f"{quote(issuer, safe='')}:{quote(account, safe='')}"
    query = urlencode(
        {"secret": secret, "issuer": issuer, "algorithm": ALGORITHM, "digits": DIGITS, "period": PERIOD},
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"


def provisioning(secret: str, *, account: str, issuer: str) -> Provisioning:
    uri = otpauth_uri(secret, account=account, issuer=issuer)
    qr = segno.make(uri, error="m")
    png = io.BytesIO()
    qr.save(png, kind="png", scale=6, border=4)
    text = io.StringIO()
    qr.terminal(out=text, compact=True)
    return Provisioning(uri, secret, Image(png.getvalue(), "totp-qr.png", text.getvalue().rstrip("\n")))


async def begin(
    verifier: TotpVerifier, session: AsyncSession, *, username: str, account: str, issuer: str, actor: str
) -> Provisioning:
    """Store a new, inactive secret for ``username`` and return how to add it to an app."""
    secret = pyotp.random_base32(SECRET_LENGTH)
    await verifier.enrol(session, username, secret, active=False, actor=actor)
    return provisioning(secret, account=account, issuer=issuer)


async def reset(verifier: TotpVerifier, session: AsyncSession, *, now: datetime, username: str, actor: str) -> bool:
    """An admin's reset: the old secret stops working at once and the person is told to enrol again."""
    removed = await verifier.remove(session, username, actor=actor)
    if removed:
        await notify(session, now=now, usernames=[username], template="identity/totp_reset", context={})
    return removed
