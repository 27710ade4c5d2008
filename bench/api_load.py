"""API load benchmark: 200 concurrent clients polling job status while 20 songs a second are
submitted, against one API process (uvicorn) on this machine, with PostgreSQL and worker mode
(submissions go into the queue; no worker runs, so the machine's cores serve only the API).

The load comes from wrk (C, from the distribution's packages), so the load generator takes little
of the machine: 200 connections each poll once a second (`delay()`), 20 more each submit once a
second. Baseline, measured in the same run with the same load: the same polling against
GET /api/v1/engines, which touches no database. Prints p50/p99 latencies, errors and the ratio.

    bench/api.sh [--clients 200] [--submit-rate 20] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, text

from functions.request import build_request
from infra.accounts import create_api_key, create_user
from infra.db import make_engine, make_sessions
from infra.jobs import JobService
from infra.settings import Settings
from infra.storage import LocalStorage

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
USERS = 20

POLL_LUA = """
local paths = %(paths)s
local keys = %(keys)s
local n = 0
request = function()
  n = n + 1
  local i = (n %% #paths) + 1
  -- job i (1-based) belongs to user (i - 1) mod USERS
  return wrk.format("GET", paths[i], {["Authorization"] = "Bearer " .. keys[((i - 1) %% #keys) + 1]})
end
-- independent clients: a mean of one request a second each, not all at the same instant
delay = function() return math.random(%(delay_ms)d / 2, %(delay_ms)d * 3 / 2) end
"""

SUBMIT_LUA = """
local keys = %(keys)s
local n = 0
request = function()
  n = n + 1
  local body = '{"prompt": "bench song ' .. n .. '", "duration_s": 30, "variations": 2, "seed": ' .. n .. '}'
  local key = keys[(n %% #keys) + 1]
  local headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
  return wrk.format("POST", "/api/v1/songs", headers, body)
end
delay = function() return math.random(%(delay_ms)d / 2, %(delay_ms)d * 3 / 2) end
"""


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


def lua_list(items: list[str]) -> str:
    return "{" + ", ".join(json.dumps(i) for i in items) + "}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(output: str) -> dict:
    """Requests, percentiles and errors from `wrk --latency` output."""
    result: dict = {"errors": {}}
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", output, re.M)
        result[f"p{pct}_ms"] = _ms(match[1]) if match else float("nan")
    match = re.search(r"(\d+) requests in", output)
    result["requests"] = int(match[1]) if match else 0
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        result["errors"]["non-2xx"] = int(match[1])
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        for name, count in zip(("connect", "read", "write", "timeout"), match.groups(), strict=True):
            if int(count):
                result["errors"][name] = int(count)
    return result


def phase(
    wrk: str, base: str, poll_script: Path, submit_script: Path, args: argparse.Namespace, pid: int
) -> dict:
    """Both loads at once for `args.seconds`; returns the two wrk reports and the API's CPU time."""
    seconds = f"{args.seconds:g}s"
    before = cpu_seconds(pid)
    common = ["--latency", "--timeout", "10s", "-d", seconds]
    pollers = subprocess.Popen(
        [wrk, "-t2", f"-c{args.clients}", *common, "-s", str(poll_script), base],
        stdout=subprocess.PIPE,
        text=True,
    )
    submitters = None
    if args.submit_rate > 0:
        submitters = subprocess.Popen(
            [wrk, "-t1", f"-c{int(args.submit_rate)}", *common, "-s", str(submit_script), base],
            stdout=subprocess.PIPE,
            text=True,
        )
    polls = parse_wrk(pollers.communicate()[0])
    submits = parse_wrk(submitters.communicate()[0]) if submitters else {"requests": 0, "errors": {}}
    return {"polls": polls, "submits": submits, "cpu": cpu_seconds(pid) - before}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--submit-rate", type=float, default=20.0, help="submitting connections, 1/s each")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        parser.exit(2, "bench/api.sh: wrk is not installed (scripts/install.sh --test installs it)\n")

    schema = f"bench_{os.getpid()}"
    admin = create_engine(POSTGRES)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    work = Path(tempfile.mkdtemp(prefix="refrain-bench-"))
    server = None
    try:
        keys, jobs = seed(url, work / "data", args.clients)
        env = {
            **os.environ,
            "REFRAIN_DATA_DIR": str(work / "data"),
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
        log = work / "api.log"
        server = subprocess.Popen(
            [sys.executable, "-m", "web.serve"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{args.port}"
        for _ in range(600):
            try:
                with urllib.request.urlopen(base + "/api/v1/engines", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        scripts = {}
        for name, template, paths in (
            ("jobs", POLL_LUA, [f"/api/v1/jobs/{j}" for j in jobs]),
            ("engines", POLL_LUA, ["/api/v1/engines"]),
            ("submit", SUBMIT_LUA, []),
        ):
            scripts[name] = work / f"{name}.lua"
            scripts[name].write_text(
                template % {"paths": lua_list(paths), "keys": lua_list(keys), "delay_ms": 1000}
            )
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(
            f"{args.clients} clients polling once a second, {args.submit_rate:g} submissions/s, "
            f"{args.seconds:g} s a phase; one API process, PostgreSQL, worker mode; load from wrk"
        )
        warm = argparse.Namespace(**{**vars(args), "seconds": 5.0})
        phase(wrk, base, scripts["jobs"], scripts["submit"], warm, server.pid)  # caches, pools, plans
        results = {
            "baseline GET /api/v1/engines": phase(
                wrk, base, scripts["engines"], scripts["submit"], args, server.pid
            ),
            "GET /api/v1/jobs/{id}": phase(wrk, base, scripts["jobs"], scripts["submit"], args, server.pid),
        }
        for name, result in results.items():
            polls, submits = result["polls"], result["submits"]
            for label, report, unit in ((name, polls, "req"), ("  + POST /api/v1/songs", submits, "sub")):
                errors = report["errors"]
                print(
                    f"{label:30s} {report['requests']:6d} {unit}  p50 {report.get('p50_ms', 0):6.1f} ms  "
                    f"p99 {report.get('p99_ms', 0):6.1f} ms  errors {sum(errors.values())} {errors or ''}"
                )
            print(f"{'  API process CPU':30s} {result['cpu']:.1f} s in {args.seconds:g} s")
        measured = results["GET /api/v1/jobs/{id}"]
        baseline = results["baseline GET /api/v1/engines"]
        ratio = measured["polls"]["p99_ms"] / baseline["polls"]["p99_ms"]
        print(f"job-status p99 / baseline p99: {ratio:.2f}x (target: job-status p99 < 50 ms, zero errors)")
        errors = [r[k]["errors"] for r in results.values() for k in ("polls", "submits")]
        ok = measured["polls"]["p99_ms"] < 50 and not any(errors)
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
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
