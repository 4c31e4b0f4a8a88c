"""TOTP verification (RFC 6238) that resists replay and guessing.

A code is accepted for the current 30-second step or one step either side.
Each step is accepted at most once per CRM user: the accepted step is stored
and any step at or below it is refused, by one conditional UPDATE, so two
parallel submissions of one code give exactly one success. Failures are
counted per CRM user across every channel; after ``max_failures`` the user is
refused for a back-off that doubles with each lock-out. A lock-out does not
clear the count, so the first wrong code after it locks again at once, for
longer; only a right code (audited) clears the count and the back-off.
"""

from __future__ import annotations

import hmac
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import pyotp
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.config import TotpSettings
from bot.errors import ConfigError
from bot.identity.secrets import SecretBox
from bot.requests import audit
from bot.storage.models import TotpEnrolment

PERIOD = 30
DIGITS = 6
WINDOW = 1


class CodeCheck(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    MALFORMED = "malformed"  # not six digits: not counted as a guess
    REPLAYED = "replayed"
    THROTTLED = "throttled"
    NOT_ENROLLED = "not_enrolled"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    outcome: CodeCheck
    retry_after: timedelta | None = None
    attempts_left: int | None = None
    lockout_started: bool = False  # this very failure began a lock-out: admins should hear of it

    @property
    def ok(self) -> bool:
        return self.outcome is CodeCheck.OK


def normalise_code(text: str) -> str | None:
    """Six digits from what the person typed (spaces and dashes allowed), else ``None``."""
    # NFKC turns full-width digits from a Chinese keyboard into ASCII ones.
    digits = "".join(ch for ch in unicodedata.normalize("NFKC", text) if ch not in " -")
    if len(digits) == DIGITS and digits.isascii() and digits.isdigit():
        return digits
    return None


def time_step(at: datetime) -> int:
    return int(at.timestamp()) // PERIOD


def matching_step(secret: str, code: str, at: datetime) -> int | None:
    """The time step within the window whose code is ``code``, if any."""
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    current = time_step(at)
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        # Compare every candidate so the time taken does not tell which one matched.
        if hmac.compare_digest(totp.at(step * PERIOD), code):
            found = step
    return found


class TotpVerifier:
    """Checks codes against the encrypted enrolment of a CRM user."""

    def __init__(self, box: SecretBox | None, clock: Clock, settings: TotpSettings) -> None:
        self._box = box
        self._clock = clock
        self._settings = settings

    def __repr__(self) -> str:
        return "TotpVerifier()"

    def _require_box(self) -> SecretBox:
        if self._box is None:
            raise ConfigError("security.secret_key: no encryption key is configured, so TOTP cannot be used")
        return self._box

    async def enrolment(self, session: AsyncSession, username: str) -> TotpEnrolment | None:
        return await session.get(TotpEnrolment, username)

    async def is_enrolled(self, session: AsyncSession, username: str) -> bool:
        enrolment = await self.enrolment(session, username)
        return enrolment is not None and enrolment.active

    async def remove(self, session: AsyncSession, username: str, *, actor: str) -> bool:
        """Forget the user's enrolment at once (an admin's reset); ``False`` when there was none."""
        enrolment = await self.enrolment(session, username)
        if enrolment is None:
            return False
        await session.delete(enrolment)
        await session.flush()
        await audit.record(session, at=self._clock.now(), actor=actor, action="totp.reset", subject=username)
        return True

    def rotate(self, enrolment: TotpEnrolment) -> None:
        """Re-encrypt the secret under the current key (after a key rotation)."""
        enrolment.secret_ciphertext = self._require_box().rotate(enrolment.secret_ciphertext)

    async def enrol(self, session: AsyncSession, username: str, secret: str, *, active: bool, actor: str) -> None:
        """Store ``secret`` (encrypted) as the user's enrolment, replacing any earlier one."""
        now = self._clock.now()
        enrolment = await self.enrolment(session, username)
        if enrolment is None:
            enrolment = TotpEnrolment(crm_username=username, created_at=now, secret_ciphertext=b"")
            session.add(enrolment)
        enrolment.secret_ciphertext = self._require_box().encrypt(secret)
        enrolment.active = active
        enrolment.created_at = now
        enrolment.confirmed_at = now if active else None
        enrolment.last_used_step = None
        enrolment.failed_attempts = 0
        enrolment.lockouts = 0
        enrolment.locked_until = None
        await session.flush()
        await audit.record(
            session, at=now, actor=actor, action="totp.enrolled", subject=username, details={"active": active}
        )

    async def verify(
        self, session: AsyncSession, username: str, typed: str, *, actor: str, confirming: bool = False
    ) -> VerifyResult:
        """Check one code; the caller's transaction keeps the result even when it is a failure.

        With ``confirming`` the code is checked against a new, not yet active
        enrolment, and a right code activates it.
        """
        now = self._clock.now()
        enrolment = await self.enrolment(session, username)
        if enrolment is None or enrolment.active == confirming:
            return VerifyResult(CodeCheck.NOT_ENROLLED)
        if enrolment.locked_until is not None and enrolment.locked_until > now:
            return VerifyResult(CodeCheck.THROTTLED, retry_after=enrolment.locked_until - now)
        code = normalise_code(typed)
        if code is None:
            return VerifyResult(CodeCheck.MALFORMED)
        step = matching_step(self._require_box().decrypt(enrolment.secret_ciphertext), code, now)
        if step is not None:
            accepted = await session.execute(
                update(TotpEnrolment)
                .where(
                    TotpEnrolment.crm_username == username,
                    TotpEnrolment.active == (not confirming),
                    (TotpEnrolment.last_used_step.is_(None)) | (TotpEnrolment.last_used_step < step),
                )
                .values(
                    last_used_step=step,
                    failed_attempts=0,
                    lockouts=0,
                    locked_until=None,
                    **({"active": True, "confirmed_at": now} if confirming else {}),
                )
                .execution_options(synchronize_session=False)
            )
            if accepted.rowcount == 1:  # type: ignore[attr-defined]
                action = "totp.confirmed" if confirming else "totp.verified"
                await audit.record(session, at=now, actor=actor, action=action, subject=username)
                await session.refresh(enrolment)
                return VerifyResult(CodeCheck.OK)
            return await self._failure(session, username, now, actor, CodeCheck.REPLAYED)
        return await self._failure(session, username, now, actor, CodeCheck.WRONG)

    async def _failure(
        self, session: AsyncSession, username: str, now: datetime, actor: str, outcome: CodeCheck
    ) -> VerifyResult:
        failures = await session.scalar(
            update(TotpEnrolment)
            .where(TotpEnrolment.crm_username == username)
            .values(failed_attempts=TotpEnrolment.failed_attempts + 1)
            .returning(TotpEnrolment.failed_attempts)
            .execution_options(synchronize_session=False)
        )
        failures = int(failures or 0)
        await audit.record(
            session,
            at=now,
            actor=actor,
            action=f"totp.{outcome.value}",
            subject=username,
            details={"failures": failures},
        )
        if failures < self._settings.max_failures:
            return VerifyResult(outcome, attempts_left=self._settings.max_failures - failures)
        lockouts = await session.scalar(select(TotpEnrolment.lockouts).where(TotpEnrolment.crm_username == username))
        wait = timedelta(
            seconds=min(self._settings.lockout_seconds * 2 ** int(lockouts or 0), self._settings.lockout_max_seconds)
        )
        # failed_attempts stays where it is: the tries were used up, and waiting does not earn new ones.
        await session.execute(
            update(TotpEnrolment)
            .where(TotpEnrolment.crm_username == username)
            .values(lockouts=TotpEnrolment.lockouts + 1, locked_until=now + wait)
            .execution_options(synchronize_session=False)
        )
        await audit.record(
            session,
            at=now,
            actor=actor,
            action="totp.throttled",
            subject=username,
            details={"seconds": int(wait.total_seconds())},
        )
        return VerifyResult(CodeCheck.THROTTLED, retry_after=wait, lockout_started=True)

    def current_code(self, enrolment: TotpEnrolment) -> str:
        """The code valid now (for the demo's ``demo code`` only)."""
        secret = self._require_box().decrypt(enrolment.secret_ciphertext)
        return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).at(self._clock.now())
