"""The studio's library: jobs and songs in SQLAlchemy 2 models (SQLite by default)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker

JOB_STATES = ("submitted", "queued", "running", "complete", "error")
UNFINISHED = ("submitted", "queued", "running")
LOCAL_USER_ID = "local"  # the single user of the zero-setup studio; created by migration 0003
MIGRATIONS = Path(__file__).parent / "migrations"


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    email: Mapped[str | None] = mapped_column(String(320), unique=True, default=None)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)  # argon2id
    # free: a daily allowance; paid: a Stripe subscription (metered per song, monthly safety cap);
    # custom: `monthly_credits` a month, set by the operator (the local studio's user, staff accounts)
    plan: Mapped[str] = mapped_column(String(16), default="free")
    monthly_credits: Mapped[int] = mapped_column(Integer, default=0)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), default=None)
    subscription_status: Mapped[str | None] = mapped_column(String(32), default=None)
    # the Stripe `created` time of the newest event applied to this user's billing state: older
    # events arriving late change nothing (Stripe does not promise delivery order)
    billing_synced_at: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    """Only the SHA-256 of a key is stored (keys are 256-bit random, so no slow hash is needed)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings: "rf_ab12cd…"
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class WebSession(Base):
    """A browser session; the cookie holds the token, the table its SHA-256."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True, default=LOCAL_USER_ID)
    kind: Mapped[str] = mapped_column(
        String(16), default="generate"
    )  # generate | extend | stems | repaint | cover
    tier: Mapped[str] = mapped_column(String(8), default="free")  # free | paid: which runner, metered
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="submitted", index=True)
    stage: Mapped[str] = mapped_column(String(64), default="submitted")
    step: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claim: Mapped[str | None] = mapped_column(String(32), default=None)  # the attempt that may finish it
    credits: Mapped[int] = mapped_column(Integer, default=0)  # charged at submission
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    songs: Mapped[list[Song]] = relationship(back_populates="job", order_by="Song.variation")


class Song(Base):
    """A clip: created with its job (status follows it), filled in when the job completes."""

    __tablename__ = "songs"
    __table_args__ = (UniqueConstraint("job_id", "variation", name="uq_songs_job_variation"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True, default=LOCAL_USER_ID)
    variation: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="complete", index=True)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    title: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(Text, default="")
    lyrics: Mapped[str] = mapped_column(Text, default="")
    style: Mapped[str] = mapped_column(Text, default="")
    negative_style: Mapped[str] = mapped_column(Text, default="")
    engine: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float)
    files: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # format -> storage key
    song_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    job: Mapped[Job] = relationship(back_populates="songs")


class JobEvent(Base):
    """One step of a job's progress; `seq` counts from 1 per job and is the SSE event id."""

    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq", name="uq_job_events_job_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # progress | complete | error
    stage: Mapped[str] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CreditEntry(Base):
    """The credit ledger, append-only: a user's balance in a period (a UTC day for the free plan, a
    UTC month otherwise) is the sum of `delta` over that period's entries, the allowance included.

    Every entry has a natural `key` the database keeps unique: one allowance per user and period
    ("allowance:<user>:<period>"), one charge and at most one refund per job ("charge:<job>")."""

    __tablename__ = "credit_ledger"
    __table_args__ = (
        UniqueConstraint("job_id", "reason", name="uq_credit_ledger_job_reason"),
        Index("ix_credit_ledger_user_period", "user_id", "period"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), default=None)
    delta: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(16))  # allowance | charge | refund | grant
    period: Mapped[str] = mapped_column(String(40))  # "day:2026-11-25" | "month:2026-11"
    key: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class StripeEvent(Base):
    """Each Stripe event handled, once: a replayed or duplicated delivery finds its id here."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    created: Mapped[int] = mapped_column(Integer)  # Stripe's own time for the event (unix seconds)
    outcome: Mapped[str] = mapped_column(String(200))  # what it changed, for operators
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MeterOutbox(Base):
    """Usage waiting to reach Stripe: written with the job's completion, sent (and retried) later.

    `identifier` is the Stripe meter event's identifier (the clip's id), so a resend after a lost
    answer is recognised by Stripe as the same event and never billed twice."""

    __tablename__ = "meter_outbox"
    __table_args__ = (Index("ix_meter_outbox_state_next_try_at", "state", "next_try_at"),)

    identifier: Mapped[str] = mapped_column(String(100), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    customer_id: Mapped[str] = mapped_column(String(255))
    event_name: Mapped[str] = mapped_column(String(100))
    value: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[int] = mapped_column(Integer)  # when the song was made (unix seconds)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | rejected
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class ShareLink(Base):
    __tablename__ = "share_links"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    song_id: Mapped[str] = mapped_column(ForeignKey("songs.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: Any, _: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the worker's writes
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
    else:
        # one connection per API worker thread (AnyIO runs sync endpoints on up to 40) without waiting
        engine = create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=30)
    migrate(engine)
    return engine


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent; every start runs it)."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def make_sessions(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
