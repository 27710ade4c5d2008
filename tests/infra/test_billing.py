"""Plans, credits and usage metering: money and credits are never lost, doubled or granted twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from functions.request import build_request
from infra.accounts import create_user
from infra.billing import StripeBilling, UsageReporter
from infra.credits import PlanRequired, balance
from infra.db import CreditEntry, Job, MeterOutbox, User, make_engine, make_sessions
from infra.jobs import JobService, NotEnoughCredits
from infra.settings import Settings
from infra.storage import LocalStorage
from tests.utils.databases import database_url
from tests.utils.stripe import StripeRecorder, stripe_settings
from tests.utils.studio import quick_settings

SONG = {"prompt": "folk song about the sea", "duration_s": 10, "seed": 3, "variations": 1}


class Collect:
    """A runner that only remembers what it was handed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.jobs: list[str] = []

    def dispatch(self, job_id: str) -> None:
        self.jobs.append(job_id)

    def shutdown(self) -> None:
        pass


class Studio:
    def __init__(self, url: str, folder: Path, **overrides: Any) -> None:
        self.settings: Settings = quick_settings(folder / "data", url, **{**stripe_settings(), **overrides})
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(self.settings.resolved_database_url)
        self.sessions: sessionmaker = make_sessions(self.engine)
        self.service = JobService(self.settings, self.sessions, LocalStorage(self.settings.data_dir))
        self.free, self.paid = Collect("inline"), Collect("modal")
        self.service.dispatcher, self.service.paid_dispatcher = self.free, self.paid
        self.stripe = StripeRecorder()
        self.reporter = UsageReporter(self.sessions, StripeBilling(self.settings, http_client=self.stripe))

    def user(self, email: str, plan: str = "free", monthly_credits: int | None = None) -> str:
        with self.sessions() as session:
            user = create_user(session, email, monthly_credits=monthly_credits)
            if plan == "paid":
                user.plan, user.stripe_customer_id = "paid", f"cus_{user.id[:8]}"
            session.commit()
            return user.id

    def submit(self, user_id: str, **fields: Any) -> Job:
        return self.service.submit(user_id, build_request(**{**SONG, **fields}))

    def ledger(self, user_id: str) -> list[tuple[str, int]]:
        with self.sessions() as session:
            rows = session.scalars(
                select(CreditEntry).where(CreditEntry.user_id == user_id).order_by(CreditEntry.id)
            )
            return [(row.reason, row.delta) for row in rows]

    def outbox(self) -> list[MeterOutbox]:
        with self.sessions() as session:
            return list(session.scalars(select(MeterOutbox).order_by(MeterOutbox.created_at)))

    def balance_left(self, user_id: str, now: datetime | None = None) -> int:
        with self.sessions() as session:
            user = session.get(User, user_id)
            assert user is not None
            return balance(session, self.settings, user, now).left


@pytest.fixture(params=["sqlite", "postgresql"])
def studio(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Studio]:
    with database_url(request.param, tmp_path) as url:
        made = Studio(url, tmp_path)
        yield made
        made.engine.dispose()


def test_a_paid_song_is_metered_once_with_its_clip_id_as_identifier(studio: Studio) -> None:
    payer = studio.user("payer@example.com", plan="paid")
    job = studio.submit(payer, variations=2)
    assert studio.paid.jobs == [job.id] and studio.free.jobs == []  # the paid tier's runner
    assert studio.service.run(job.id) == "complete"
    rows = studio.outbox()
    clip_ids = sorted(song.id for song in job.songs)
    assert sorted(row.identifier for row in rows) == clip_ids and {r.state for r in rows} == {"pending"}

    assert studio.reporter.flush() == {"sent": 2, "retry": 0, "rejected": 0}
    sent = studio.stripe.sent("post", "/v1/billing/meter_events")
    assert sorted(r.params["identifier"] for r in sent) == clip_ids
    assert sent[0].params == {
        "event_name": "refrain_song",
        "identifier": sent[0].params["identifier"],
        "timestamp": str(rows[0].timestamp),
        "payload[stripe_customer_id]": f"cus_{payer[:8]}",
        "payload[value]": "1",
    }
    assert sent[0].headers["Authorization"] == "Bearer sk_test_refrain"
    assert studio.reporter.flush() == {"sent": 0, "retry": 0, "rejected": 0}  # nothing twice
    assert {row.state for row in studio.outbox()} == {"sent"}


def test_usage_survives_stripe_being_down_and_reaches_it_exactly_once(studio: Studio) -> None:
    payer = studio.user("payer@example.com", plan="paid")
    job = studio.submit(payer)
    assert studio.service.run(job.id) == "complete"
    clip = job.songs[0].id
    now = datetime.now(UTC)

    studio.stripe.down = 2  # unreachable: nothing is lost, the row waits with a backoff
    assert studio.reporter.flush(now=now) == {"sent": 0, "retry": 1, "rejected": 0}
    (row,) = studio.outbox()
    assert row.state == "pending" and row.attempts == 1 and "APIConnectionError" in (row.last_error or "")
    assert studio.reporter.flush(now=now) == {"sent": 0, "retry": 0, "rejected": 0}  # not due yet
    assert studio.reporter.flush(now=now + timedelta(seconds=31))["retry"] == 1  # still down
    assert studio.reporter.flush(now=now + timedelta(seconds=31))["retry"] == 0  # backs off (60 s)
    assert studio.reporter.flush(now=now + timedelta(seconds=95)) == {"sent": 1, "retry": 0, "rejected": 0}
    reached = [r for r in studio.stripe.sent("post", "/v1/billing/meter_events") if r.answered]
    assert [r.params["identifier"] for r in reached] == [clip] and list(studio.stripe.billed) == [clip]
    assert studio.reporter.flush(now=now + timedelta(hours=2)) == {"sent": 0, "retry": 0, "rejected": 0}

    # Stripe got the event but its answer was lost: the resend carries the same identifier, so
    # Stripe counts it once
    second = studio.submit(payer, seed=9)
    assert studio.service.run(second.id) == "complete"
    studio.stripe.lose_answers = 1
    later = now + timedelta(hours=3)
    assert studio.reporter.flush(now=later)["retry"] == 1
    assert studio.reporter.flush(now=later + timedelta(seconds=31))["sent"] == 1
    again = second.songs[0].id
    attempts = [
        r for r in studio.stripe.sent("post", "/v1/billing/meter_events") if r.params["identifier"] == again
    ]
    assert len(attempts) == 2 and sorted(studio.stripe.billed) == sorted([clip, again])


def test_a_rejected_meter_event_is_kept_for_the_operator(studio: Studio) -> None:
    payer = studio.user("payer@example.com", plan="paid")
    job = studio.submit(payer)
    assert studio.service.run(job.id) == "complete"
    studio.stripe.routes[("post", "/v1/billing/meter_events")] = lambda _: (
        400,
        {
            "error": {
                "type": "invalid_request_error",
                "message": "No such customer",
                "code": "resource_missing",
            }
        },
    )
    assert studio.reporter.flush() == {"sent": 0, "retry": 0, "rejected": 1}
    (row,) = studio.outbox()
    assert row.state == "rejected" and "No such customer" in (row.last_error or "")


def test_a_failed_job_returns_its_credits_and_bills_nothing(studio: Studio, tmp_path: Path) -> None:
    payer = studio.user("payer@example.com", plan="paid")
    job = studio.submit(payer, variations=2)
    studio.settings.soundfont = str(tmp_path / "missing.sf2")  # the engine cannot render
    assert studio.service.run(job.id) == "error"
    assert studio.ledger(payer) == [("allowance", 10_000), ("charge", -10), ("refund", 10)]
    assert studio.balance_left(payer) == 10_000 and studio.outbox() == []
    assert studio.service.run(job.id) == "error"  # a retry of a finished job changes nothing
    assert studio.ledger(payer) == [("allowance", 10_000), ("charge", -10), ("refund", 10)]


def test_a_cancelled_job_returns_its_credits_and_bills_nothing(studio: Studio) -> None:
    payer = studio.user("payer@example.com", plan="paid")
    queued = studio.submit(payer)
    assert studio.service.cancel(queued.id) == "error"
    assert studio.service.run(queued.id) == "error"  # a runner picking it up later does nothing

    running = studio.submit(payer, duration_s=60, seed=5)
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(studio.service.run(running.id)))
    worker.start()
    deadline = datetime.now(UTC) + timedelta(seconds=60)
    while datetime.now(UTC) < deadline:  # cancel once the attempt is rendering
        with studio.sessions() as session:
            job = session.get(Job, running.id)
            assert job is not None
            if job.status == "running" and job.step > 0:
                break
        time.sleep(0.02)
    assert studio.service.cancel(running.id) == "error"
    worker.join(timeout=120)
    assert result == ["error"]
    with studio.sessions() as session:
        job = session.get(Job, running.id)
        assert job is not None and job.error == "cancelled"
        assert {song.status for song in job.songs} == {"error"} and all(not s.files for s in job.songs)
    assert studio.ledger(payer) == [
        ("allowance", 10_000), ("charge", -5), ("refund", 5), ("charge", -5), ("refund", 5),
    ]  # fmt: skip
    assert studio.outbox() == []


def test_the_balance_always_equals_the_sum_of_the_periods_entries(studio: Studio, tmp_path: Path) -> None:
    people = [studio.user(f"u{i}@example.com", plan=p) for i, p in enumerate(["free", "paid", "free"])]
    people.append(studio.user("staff@example.com", monthly_credits=40))
    for i, person in enumerate(people):
        jobs = [studio.submit(person, variations=1 + (i + j) % 2, seed=j) for j in range(3)]
        studio.service.cancel(jobs[0].id)
        studio.service.cancel(jobs[1].id)
        studio.service.cancel(jobs[1].id)  # twice: one refund
    with studio.sessions() as session:
        for person in people:
            user = session.get(User, person)
            assert user is not None
            now = balance(session, studio.settings, user)
            total = session.scalar(
                select(func.sum(CreditEntry.delta)).where(
                    CreditEntry.user_id == person, CreditEntry.period == now.allowance.key
                )
            )
            assert now.granted and now.left == total
            refunds = session.scalar(
                select(func.count()).where(CreditEntry.user_id == person, CreditEntry.reason == "refund")
            )
            assert refunds == 2


def test_the_free_allowance_is_daily_and_renews_at_midnight_utc(studio: Studio) -> None:
    person = studio.user("free@example.com")
    studio.submit(person, variations=2)
    today = datetime.now(UTC)
    assert studio.balance_left(person, today) == 40  # 50 a day, 10 spent
    tomorrow = (today + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert studio.balance_left(person, tomorrow) == 50
    assert studio.balance_left(person, tomorrow - timedelta(microseconds=1)) == 40
    studio.settings.max_running_jobs = 10
    jobs = [studio.submit(person, variations=2, seed=seed) for seed in range(4)]  # the other 40
    with pytest.raises(NotEnoughCredits, match="0 are left this day"):
        studio.submit(person, seed=99)
    studio.service.cancel(jobs[0].id)
    assert studio.balance_left(person) == 10
    studio.submit(person, variations=2, seed=98)
    assert studio.balance_left(person) == 0


def test_the_free_plan_keeps_to_the_free_engines(studio: Studio) -> None:
    studio.settings.free_engines = ["sketch-lite"]
    person = studio.user("free@example.com")
    with pytest.raises(PlanRequired, match="part of the paid plan"):
        studio.submit(person)
    staff = studio.user("staff@example.com", monthly_credits=100)
    assert studio.submit(staff).tier == "free" and studio.free.jobs  # custom plans use every engine


def test_two_requests_for_the_last_credit_one_succeeds(tmp_path: Path) -> None:
    """Real concurrency on PostgreSQL: the user's row lock serialises the balance check."""
    with database_url("postgresql", tmp_path) as url:
        studio = Studio(url, tmp_path)
        for round_ in range(8):
            person = studio.user(f"last{round_}@example.com", monthly_credits=5)  # one clip's worth
            start = threading.Barrier(2)
            outcomes: list[str] = []

            def attempt(
                seed: int,
                person: str = person,
                start: threading.Barrier = start,
                outcomes: list[str] = outcomes,
            ) -> None:
                start.wait()
                try:
                    studio.submit(person, seed=seed)
                    outcomes.append("ok")
                except NotEnoughCredits:
                    outcomes.append("402")

            threads = [threading.Thread(target=attempt, args=(seed,)) for seed in (1, 2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(outcomes) == ["402", "ok"]
            assert studio.ledger(person) == [("allowance", 5), ("charge", -5)]
            assert studio.balance_left(person) == 0
        studio.engine.dispose()


def test_the_same_event_delivered_concurrently_is_applied_once(tmp_path: Path) -> None:
    """Stripe may deliver an event twice at once: the stored event id lets one through (PostgreSQL)."""
    from infra.billing import handle_event
    from tests.utils.stripe import checkout_completed, event

    with database_url("postgresql", tmp_path) as url:
        studio = Studio(url, tmp_path)
        person = studio.user("twice@example.com")
        paid = event(
            "checkout.session.completed", checkout_completed(person, "cus_twice", "sub_t"), int(time.time())
        )
        start = threading.Barrier(8)
        firsts: list[bool] = []

        def deliver() -> None:
            start.wait()
            firsts.append(handle_event(studio.sessions, studio.settings, paid).first)

        threads = [threading.Thread(target=deliver) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(firsts) == [False] * 7 + [True]
        assert studio.ledger(person) == [("allowance", 10_000)]
        studio.engine.dispose()
