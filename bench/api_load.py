"""API load benchmark: 200 concurrent clients polling job status while 20 songs a second are
submitted, against one API process (uvicorn) on this machine, with PostgreSQL and worker mode
(submissions go into the queue; no worker runs, so the machine's cores serve only the API).

Baseline, measured in the same run with the same clients: the same polling against
GET /api/v1/engines, which touches no database. Prints p50/p99 latencies, errors and the ratio.

    .venv/bin/python -m bench.api_load [--clients 200] [--submit-rate 20] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import httpx2
from sqlalchemy import create_engine, text

from functions.request import build_request
from infra.accounts import create_api_key, create_user
from infra.db import make_engine, make_sessions
from infra.jobs import JobService
from infra.settings import Settings
from infra.storage import LocalStorage

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
USERS = 20


class _Queue:
    name = "worker"

    def dispatch(self, job_id: str) -> None:  # seeded jobs stay queued; the API's own submissions defer
        pass

    def shutdown(self) -> None:
        pass


def seed(url: str, data: Path, clients: int) -> tuple[list[str], list[str]]:
    """USERS users with a key each, and one queued job per client to poll."""
    settings = Settings(data_dir=data, database_url=url, environment="test", auth="accounts")
    sessions = make_sessions(make_engine(url))
    keys = []
    with sessions() as session:
        users = [create_user(session, f"user{i}@bench.local", monthly_credits=10**9) for i in range(USERS)]
        for user in users:
            keys.append(create_api_key(session, user.id, "bench")[1])
        session.commit()
        user_ids = [u.id for u in users]
    service = JobService(
        settings.model_copy(update={"max_running_jobs": 10**6}), sessions, LocalStorage(data)
    )
    service.dispatcher = _Queue()
    request = build_request(prompt="bench", lyrics="[verse]\nla la la\n", duration_s=30, seed=1)
    jobs = [service.submit(user_ids[i % USERS], request).id for i in range(clients)]
    return keys, jobs


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


async def load(
    base: str, keys: list[str], targets: list[str], seconds: float, interval: float, rate: float
) -> dict:
    latencies: list[float] = []
    submit_latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx2.Limits(max_connections=len(targets) + 100, max_keepalive_connections=len(targets) + 100)
    async with httpx2.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        start = time.monotonic()
        warm = start + 3
        end = warm + seconds

        async def poller(i: int) -> None:
            headers = {"Authorization": f"Bearer {keys[i % len(keys)]}"}
            await asyncio.sleep(interval * i / len(targets))  # spread the clients over the interval
            while (now := time.monotonic()) < end:
                t0 = time.perf_counter()
                try:
                    response = await client.get(targets[i], headers=headers)
                    ok = response.status_code == 200
                    tag = str(response.status_code)
                except httpx2.HTTPError as exc:
                    ok, tag = False, type(exc).__name__
                took = time.perf_counter() - t0
                if now >= warm:
                    latencies.append(took)
                    if not ok:
                        errors[tag] = errors.get(tag, 0) + 1
                await asyncio.sleep(max(0.0, interval - took))

        async def submit(n: int) -> None:
            headers = {"Authorization": f"Bearer {keys[n % len(keys)]}"}
            body = {"prompt": f"bench song {n}", "duration_s": 30, "variations": 2, "seed": n}
            t0 = time.perf_counter()
            try:
                response = await client.post("/api/v1/songs", json=body, headers=headers)
                ok, tag = response.status_code == 202, f"submit {response.status_code}"
            except httpx2.HTTPError as exc:
                ok, tag = False, f"submit {type(exc).__name__}"
            submit_latencies.append(time.perf_counter() - t0)
            if not ok:
                errors[tag] = errors.get(tag, 0) + 1

        async def submitter() -> None:
            if rate <= 0:
                return
            pending = []
            n = 0
            await asyncio.sleep(max(0.0, warm - time.monotonic()))
            next_at = time.monotonic()
            while next_at < end:
                pending.append(asyncio.create_task(submit(n)))
                n += 1
                next_at += 1 / rate
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await asyncio.gather(*pending)

        await asyncio.gather(*(poller(i) for i in range(len(targets))), submitter())
    return {
        "requests": len(latencies),
        "rate": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "submissions": len(submit_latencies),
        "submit_p50_ms": percentile(submit_latencies, 50) * 1000,
        "submit_p99_ms": percentile(submit_latencies, 99) * 1000,
        "errors": errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--submit-rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between one client's polls")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    schema = f"bench_{os.getpid()}"
    admin = create_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    data = Path(f"/tmp/refrain-bench-{os.getpid()}")
    server = None
    try:
        keys, jobs = seed(url, data, args.clients)
        env = {
            **os.environ,
            "REFRAIN_DATA_DIR": str(data),
            "REFRAIN_DATABASE_URL": url,
            "REFRAIN_RUNNER": "worker",
            "REFRAIN_AUTH": "accounts",
            "REFRAIN_PORT": str(args.port),
            "REFRAIN_RATE_LIMIT": "100000/minute",
            "REFRAIN_SUBMIT_RATE_LIMIT": "100000/minute",
            "REFRAIN_MAX_RUNNING_JOBS": "1000000",
            "REFRAIN_SIGN": "false",
            # shared rate limits, as with several API processes (limits' in-memory store runs a timer
            # thread every 10 ms while any window is open)
            "REFRAIN_REDIS_URL": os.environ.get("REFRAIN_REDIS_URL", "redis://127.0.0.1:6379/15"),
            "REFRAIN_ACCESS_LOG": os.environ.get("REFRAIN_ACCESS_LOG", "false"),  # logs belong to the proxy
        }
        log = Path(f"/tmp/refrain-bench-{os.getpid()}.log")
        print(f"API log: {log}")
        server = subprocess.Popen(
            [sys.executable, "-m", "web.serve"],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{args.port}"
        for _ in range(300):
            try:
                if httpx2.get(base + "/api/v1/engines", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                time.sleep(0.1)
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(
            f"{args.clients} clients polling every {args.interval:g} s, {args.submit_rate:g} submissions/s, "
            f"{args.seconds:g} s measured, one API process, PostgreSQL, worker mode"
        )

        def phase(targets: list[str]) -> dict:
            before = cpu_seconds(server.pid)
            result = asyncio.run(load(base, keys, targets, args.seconds, args.interval, args.submit_rate))
            result["cpu"] = cpu_seconds(server.pid) - before
            return result

        phase([f"/api/v1/jobs/{j}" for j in jobs])  # warm-up, not reported: caches, pools, query plans
        baseline = phase(["/api/v1/engines"] * args.clients)
        measured = phase([f"/api/v1/jobs/{j}" for j in jobs])
        for name, result in (("baseline GET /api/v1/engines", baseline), ("GET /api/v1/jobs/{id}", measured)):
            errors = result["errors"]
            print(
                f"{name:32s} {result['requests']:6d} req ({result['rate']:.0f}/s)  "
                f"p50 {result['p50_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms  "
                f"errors {sum(errors.values())} {errors or ''}"
            )
            print(
                f"{'  POST /api/v1/songs':32s} {result['submissions']:6d} sub         p50 "
                f"{result['submit_p50_ms']:.1f} ms  p99 {result['submit_p99_ms']:.1f} ms"
            )
            print(f"{'  API process CPU':32s} {result['cpu']:.1f} s in {args.seconds + 3:g} s")
        print(
            f"job-status p99 / baseline p99: {measured['p99_ms'] / baseline['p99_ms']:.2f}x "
            f"(target: job-status p99 < 50 ms, zero errors)"
        )
        ok = measured["p99_ms"] < 50 and not measured["errors"] and not baseline["errors"]
        print("PASS" if ok else "MISS")
        return 0
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
