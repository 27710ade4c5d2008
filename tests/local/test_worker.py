"""Worker mode: separate `refrain-worker` processes consume the PostgreSQL queue; a worker SIGKILLed
mid-job loses nothing — the job completes exactly once, or ends as error with its credits back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from functions.request import build_request
from infra.db import LOCAL_USER_ID, CreditEntry, Job, Song, make_engine, make_sessions
from infra.jobs import JobService
from infra.settings import Settings
from infra.storage import LocalStorage
from infra.wiring import make_job_service
from tests.utils.databases import database_url


@pytest.fixture
def queue_settings(tmp_path: Path) -> Iterator[Settings]:
    with database_url("postgresql", tmp_path) as url:
        yield Settings(
            data_dir=tmp_path / "data",
            environment="test",
            database_url=url,
            runner="worker",
            watermark="none",
            sign=False,
            worker_heartbeat_s=0.5,
            stalled_after_s=2.0,
        )


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "REFRAIN_DATA_DIR": str(settings.data_dir),
        "REFRAIN_DATABASE_URL": str(settings.database_url),
        "REFRAIN_RUNNER": "worker",
        "REFRAIN_WATERMARK": "none",
        "REFRAIN_SIGN": "false",
        "REFRAIN_WORKER_HEARTBEAT_S": "0.5",
        "REFRAIN_STALLED_AFTER_S": "2",
        **extra,
    }


def _worker(settings: Settings, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    # its own process group: SIGKILL takes its FluidSynth children down with it, as a crash would
    return subprocess.Popen(
        [sys.executable, "-m", "local.worker"],
        env=_env(settings, **extra),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _service(settings: Settings) -> JobService:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    sessions = make_sessions(make_engine(settings.resolved_database_url))
    return make_job_service(settings, sessions, LocalStorage(settings.data_dir), "cpu")


def _wait_for(service: JobService, job_id: str, done: tuple[str, ...], timeout_s: float = 180) -> Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with service.sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            if job.status in done or (done == ("mid-job",) and job.status == "running" and job.step > 0):
                return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {done}")


def _kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _submit(service: JobService, duration_s: float = 16) -> str:
    request = build_request(prompt="folk song about the sea", duration_s=duration_s, seed=5, engine="sketch")
    return service.submit(LOCAL_USER_ID, request).id


def test_a_worker_killed_mid_job_does_not_lose_it(queue_settings: Settings, tmp_path: Path) -> None:
    service = _service(queue_settings)
    job_id = _submit(service)
    log = tmp_path / "workers.log"
    first = _worker(queue_settings, log)
    try:
        _wait_for(service, job_id, ("mid-job",))
    finally:
        _kill(first)
    with service.sessions() as session:
        assert session.get(Job, job_id).status == "running"  # type: ignore[union-attr]
    second = _worker(queue_settings, log)
    try:
        job = _wait_for(service, job_id, ("complete", "error"))
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert job.status == "complete", log.read_text()[-3000:]
    assert job.attempts == 2  # the killed attempt and the one that finished
    with service.sessions() as session:
        songs = session.scalars(select(Song).where(Song.job_id == job_id)).all()
        assert len(songs) == 2 and all(s.status == "complete" and s.files for s in songs)
        ledger = session.scalars(select(CreditEntry).where(CreditEntry.job_id == job_id)).all()
        assert [(e.reason, e.delta) for e in ledger] == [("charge", -10)]  # charged once, not refunded
        done = session.scalar(
            text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'")
        )  # the queue ran the job to success once
        assert done == 1
    folder = queue_settings.data_dir / "songs" / job_id
    names = sorted(p.name for p in folder.iterdir())
    expected = [
        f"{stem}.{ext}"
        for stem in ("song", "song-2")
        for ext in ("wav", "m4a", "mp3", "flac", "preview.mp3", "hls")
    ]
    assert names == sorted(expected), names  # one set of files, no leftovers of the killed attempt


def test_a_job_that_keeps_killing_its_worker_ends_as_error_with_credits_back(
    queue_settings: Settings, tmp_path: Path
) -> None:
    service = _service(queue_settings)
    job_id = _submit(service)
    log = tmp_path / "workers.log"
    first = _worker(queue_settings, log, REFRAIN_MAX_ATTEMPTS="1")
    try:
        _wait_for(service, job_id, ("mid-job",))
    finally:
        _kill(first)
    second = _worker(queue_settings, log, REFRAIN_MAX_ATTEMPTS="1")
    try:
        job = _wait_for(service, job_id, ("complete", "error"))
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert job.status == "error" and "gave up after 1 attempts" in (job.error or "")
    with service.sessions() as session:
        ledger = session.scalars(select(CreditEntry).where(CreditEntry.job_id == job_id)).all()
        assert sorted((e.reason, e.delta) for e in ledger) == [("charge", -10), ("refund", 10)]
        spent = session.scalar(
            select(func.sum(CreditEntry.delta)).where(
                CreditEntry.user_id == LOCAL_USER_ID, CreditEntry.reason != "allowance"
            )
        )
        assert spent == 0  # all of it came back
        assert {s.status for s in session.scalars(select(Song).where(Song.job_id == job_id))} == {"error"}


def test_the_worker_refuses_sqlite_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "local.worker"],
        env={**os.environ, "REFRAIN_DATA_DIR": str(tmp_path), "REFRAIN_DATABASE_URL": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "PostgreSQL" in result.stderr and "Traceback" not in result.stderr


def test_a_free_tier_worker_takes_free_jobs_from_the_api_and_never_paid_ones(
    queue_settings: Settings, tmp_path: Path
) -> None:
    """The owner's Mac as the free tier: `refrain-worker --tier free` against the hosted database."""
    from starlette.testclient import TestClient

    from infra.db import User
    from tests.utils.studio import add_user
    from web.main import create_app

    settings = queue_settings.model_copy(update={"auth": "accounts", "paid_runner": "worker"})
    with TestClient(create_app(settings)) as client:
        free = add_user(client, "free@example.com", monthly_credits=None)
        paid = add_user(client, "paid@example.com", monthly_credits=None)
        with client.app.state.sessions() as session:  # type: ignore[attr-defined]
            payer = session.scalar(select(User).where(User.email == "paid@example.com"))
            assert payer is not None
            payer.plan, payer.stripe_customer_id = "paid", "cus_paid"
            session.commit()
        song = {"prompt": "folk song about the sea", "duration_s": 10, "variations": 1, "seed": 2}
        free_job = client.post("/api/v1/songs", json=song, headers=free).json()["id"]
        paid_job = client.post("/api/v1/songs", json=song, headers=paid).json()["id"]
        service = client.app.state.jobs  # type: ignore[attr-defined]
        worker = _worker(settings, tmp_path / "worker.log", REFRAIN_WORKER_TIERS='["free"]')
        try:
            assert _wait_for(service, free_job, ("complete", "error")).status == "complete"
            time.sleep(3)  # time enough to have taken the other one, were it allowed to
            with service.sessions() as session:
                assert session.get(Job, paid_job).status == "queued"  # type: ignore[union-attr]
                queued = session.execute(
                    text("SELECT queue_name, status FROM procrastinate_jobs ORDER BY id")
                ).all()
            assert [tuple(row) for row in queued] == [("songs", "succeeded"), ("songs-paid", "todo")]
        finally:
            worker.terminate()
            worker.wait(timeout=30)
