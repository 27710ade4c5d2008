"""Dispatchers: where a job's `JobService.run` executes.

- inline: a thread pool in the API process (the zero-setup default);
- worker: procrastinate's PostgreSQL queue, consumed by `refrain-worker` processes on any machine;
- modal: a Modal GPU function spawned per job (the paid tier; `modal_app.py` defines the function).

Why procrastinate (docs/engineering.md): the queue lives in the PostgreSQL the service already runs,
workers heartbeat from their event loop while a job's CPU-bound body runs in a thread, and jobs of a
worker that stopped heartbeating are found by the library (`get_stalled_jobs`) and retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import procrastinate

from infra.jobs import JobService

log = logging.getLogger(__name__)
QUEUES = {"free": "songs", "paid": "songs-paid"}  # one queue a tier: a worker takes the tiers it serves
QUEUE = QUEUES["free"]
TASK = "refrain.run_job"


class InlineDispatcher:
    name = "inline"

    def __init__(self, service: JobService, threads: int) -> None:
        self.service = service
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="refrain-job")

    def dispatch(self, job_id: str) -> None:
        self._pool.submit(self.service.run, job_id)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def psycopg_conninfo(database_url: str) -> str:
    """SQLAlchemy's URL (postgresql+psycopg://…) as libpq understands it."""
    parts = urlsplit(database_url)
    if not parts.scheme.startswith("postgresql"):
        raise ValueError("worker mode needs PostgreSQL: set REFRAIN_DATABASE_URL to a postgresql:// URL")
    query = urlencode(parse_qsl(parts.query))
    return urlunsplit(("postgresql", parts.netloc, parts.path, query, ""))


def make_queue_app(database_url: str, run: Callable[[str], object] | None = None) -> procrastinate.App:
    """The queue; `run` is the task's body in workers (JobService.run); producers only defer."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=psycopg_conninfo(database_url)))

    @app.task(name=TASK, queue=QUEUE, pass_context=False)
    def run_job(job_id: str) -> None:  # sync: the worker runs it in a thread, its heartbeat goes on
        if run is None:
            raise RuntimeError("refrain.run_job runs only inside refrain-worker")
        run(job_id)

    return app


class QueueDispatcher:
    """Defers one procrastinate job per Refrain job, on its tier's queue; the queueing lock keeps a
    job queued once."""

    name = "worker"

    def __init__(self, database_url: str, queue: str = QUEUE) -> None:
        self.app = make_queue_app(database_url)
        self.app.open()
        self.queue = queue

    def dispatch(self, job_id: str) -> None:
        # queued already, e.g. when recovery sends a job again after a crash between commit and defer
        with contextlib.suppress(procrastinate.exceptions.AlreadyEnqueued):
            self.app.configure_task(TASK, queueing_lock=job_id, queue=self.queue).defer(job_id=job_id)

    def shutdown(self) -> None:
        self.app.close()


class ModalDispatcher:
    """Spawns `Engine().run_job(job_id)` of the deployed app (modal_app.py); the method runs the same
    `JobService.run` against the same database and storage, so progress and results arrive as
    they do from any worker. `spawn` is injectable for tests."""

    name = "modal"

    def __init__(self, app_name: str, spawn: Callable[[str], Any] | None = None) -> None:
        self.app_name = app_name
        self._spawn = spawn

    def _default_spawn(self, job_id: str) -> Any:
        import modal

        engine = modal.Cls.from_name(self.app_name, "Engine")  # modal_app.py's GPU class
        return engine().run_job.spawn(job_id)

    def dispatch(self, job_id: str) -> None:
        call = (self._spawn or self._default_spawn)(job_id)
        log.info("job %s spawned on Modal as %s", job_id, getattr(call, "object_id", call))

    def shutdown(self) -> None:
        pass


async def retry_stalled(app: procrastinate.App, stalled_after_s: float, every_s: float) -> None:
    """procrastinate's recipe for jobs whose worker died: find them by the worker's stale heartbeat
    and put them back in the queue; `JobService.run` counts the attempts and bounds them."""
    while True:
        try:
            stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after_s)
            for job in stalled:
                log.warning("job %s (%s) stalled: its worker stopped; retrying", job.id, job.task_kwargs)
                await app.job_manager.retry_job(job)
        except Exception:  # the sweep must outlive a database hiccup
            log.exception("stalled-job sweep failed")
        await asyncio.sleep(every_s)
