"""Plans and the credit ledger.

A user's plan sets their allowance and its period:
- free: `free_daily_credits` a UTC day (reset at 00:00 UTC), free-tier engines only, the free runner;
- paid: a Stripe subscription billed per song; `paid_monthly_credits` a UTC month is only a safety
  cap against runaway bills; every engine; the paid runner (Modal);
- custom: the user's own `monthly_credits` a UTC month, set by the operator (the local studio's
  one user, staff accounts); every engine, the free runner.

The ledger is append-only. A period's balance is the sum of that period's entries: the allowance is
itself an entry, written the first time the user submits in the period (so a period nobody used has
no rows, and its balance is the allowance). Every entry's natural key is unique in the database, so a
retried write can never grant, charge or refund twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, case, func, insert, select
from sqlalchemy.orm import Session

from functions.errors import RefrainError
from infra.db import CreditEntry, User, utcnow

if TYPE_CHECKING:
    from infra.settings import Settings


class NotEnoughCredits(RefrainError):
    """Answered with 402, as Suno's API does."""


class PlanRequired(NotEnoughCredits):
    """The request needs the paid plan (an engine of the paid tier): 402 as well."""


@dataclass(frozen=True)
class Allowance:
    plan: str
    period: str  # "day" | "month" (Suno's get_limit calls it so)
    key: str  # the ledger's period label: "day:2026-11-25" | "month:2026-11"
    credits: int
    resets_at: datetime


def allowance(settings: Settings, user: User, now: datetime | None = None) -> Allowance:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if user.plan == "free":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return Allowance(
            "free", "day", f"day:{start:%Y-%m-%d}", settings.free_daily_credits, start + timedelta(days=1)
        )
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (start + timedelta(days=32)).replace(day=1)
    credits = settings.paid_monthly_credits if user.plan == "paid" else user.monthly_credits
    return Allowance(user.plan, "month", f"month:{start:%Y-%m}", credits, following)


def tier(user: User) -> str:
    """Where the user's jobs run and whether they are metered: only the paid plan is."""
    return "paid" if user.plan == "paid" else "free"


def check_engine(settings: Settings, user: User, engine: str) -> None:
    if user.plan == "free" and engine not in settings.free_engines:
        raise PlanRequired(
            f"the {engine} engine is part of the paid plan; the free plan has "
            f"{', '.join(settings.free_engines)}"
        )


def allowance_key(user_id: str, period_key: str) -> str:
    return f"allowance:{user_id}:{period_key}"


# One query for a period: the sum of its entries, whether its allowance is written yet, and what its
# charges net of refunds come to. Built once (building statements costs more than running them).
IN_PERIOD = (CreditEntry.user_id == bindparam("user_id")) & (CreditEntry.period == bindparam("period"))
PERIOD_COLUMNS = (
    func.coalesce(func.sum(CreditEntry.delta), 0),
    func.count(case((CreditEntry.reason == "allowance", 1))),
    func.coalesce(
        func.sum(case((CreditEntry.reason.in_(("charge", "refund")), CreditEntry.delta), else_=0)), 0
    ),
)
PERIOD_TOTALS = select(*PERIOD_COLUMNS).where(IN_PERIOD)
_INSERT = insert(CreditEntry)


@dataclass(frozen=True)
class Balance:
    allowance: Allowance
    left: int  # what may still be spent this period
    used: int  # charges net of refunds this period
    granted: bool  # whether the allowance entry is written

    @classmethod
    def of(cls, grant: Allowance, total: int, granted: int, spent: int) -> Balance:
        """From PERIOD_COLUMNS' values; an allowance not yet written still counts."""
        return cls(grant, int(total) + (0 if granted else grant.credits), -int(spent), bool(granted))


def balance(session: Session, settings: Settings, user: User, now: datetime | None = None) -> Balance:
    """The user's balance in the current period, read from the ledger (never written here)."""
    grant = allowance(settings, user, now)
    return Balance.of(grant, *session.execute(PERIOD_TOTALS, {"user_id": user.id, "period": grant.key}).one())


def write_allowance(session: Session, user: User, grant: Allowance, at: datetime | None = None) -> None:
    """The period's allowance entry (callers hold the user's row lock; the unique key guards anyway)."""
    session.execute(_INSERT, [entry(user.id, grant.credits, "allowance", grant.key,
                                    allowance_key(user.id, grant.key), at=at)])  # fmt: skip


def ensure_allowance(session: Session, user: User, grant: Allowance) -> None:
    """The period's allowance entry, unless it is written already (callers hold the row lock)."""
    key = allowance_key(user.id, grant.key)
    if session.scalar(select(CreditEntry.id).where(CreditEntry.key == key)) is None:
        write_allowance(session, user, grant)


def entry(
    user_id: str,
    delta: int,
    reason: str,
    period: str,
    key: str,
    job_id: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "user_id": user_id, "job_id": job_id, "delta": delta, "reason": reason, "period": period,
        "key": key, "created_at": at or utcnow(),
    }  # fmt: skip
