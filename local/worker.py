"""`refrain-worker`: a separate process that runs queued jobs (REFRAIN_RUNNER=worker).

Start as many as the machine has room for, on this box or any other that reaches the database and
the storage. Each heartbeats to PostgreSQL; if one dies mid-job, another retries the job."""

from __future__ import annotations

import argparse
import asyncio
import logging

import procrastinate

from infra.db import is_postgres, make_engine, make_sessions
from infra.jobs import JobService
from infra.queue import QUEUES, make_queue_app, retry_stalled
from infra.settings import get_settings
from infra.wiring import make_storage
from local.device import pick_device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="refrain-worker", description=__doc__)
    parser.add_argument(
        "--concurrency", type=int, default=None, help="jobs at once (default: REFRAIN_WORKER_THREADS)"
    )
    parser.add_argument(
        "--tier",
        action="append",
        choices=sorted(QUEUES),
        help="the tiers' jobs to take (repeatable; default: REFRAIN_WORKER_TIERS, i.e. free and paid)",
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    settings = get_settings()
    if not is_postgres(settings.database_url or ""):
        parser.exit(
            2, "refrain-worker: REFRAIN_DATABASE_URL must point at PostgreSQL (the queue lives there)\n"
        )
    sessions = make_sessions(make_engine(settings.resolved_database_url))
    device = pick_device(settings.device)
    service = JobService(settings, sessions, make_storage(settings), device, settings.signing_material())
    app = make_queue_app(settings.resolved_database_url, run=service.run)  # the same body as inline
    asyncio.run(
        _work(
            app,
            settings.worker_heartbeat_s,
            settings.stalled_after_s,
            args.concurrency or settings.worker_threads,
            [QUEUES[tier] for tier in (args.tier or settings.worker_tiers)],
        )
    )
    return 0


async def _work(
    app: procrastinate.App, heartbeat_s: float, stalled_after_s: float, concurrency: int, queues: list[str]
) -> None:
    async with app.open_async():
        sweeper = asyncio.create_task(retry_stalled(app, stalled_after_s, max(1.0, heartbeat_s)))
        try:
            await app.run_worker_async(
                queues=queues,
                concurrency=concurrency,
                update_heartbeat_interval=heartbeat_s,
                stalled_worker_timeout=stalled_after_s,
                fetch_job_polling_interval=1.0,
                install_signal_handlers=True,
            )
        finally:
            sweeper.cancel()


if __name__ == "__main__":
    raise SystemExit(main())
