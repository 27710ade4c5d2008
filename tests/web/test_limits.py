"""Limits (413, 429 + Retry-After, 402), the Modal dispatcher seam, and the studio on S3 storage."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from starlette.testclient import TestClient

from infra.db import CreditEntry, Job
from infra.queue import ModalDispatcher
from tests.utils.s3 import CREDENTIALS, create_bucket, fetch, s3_server
from tests.utils.studio import QUICK_SONG, add_user, quick_settings, wait_job
from web.main import create_app


def test_bodies_over_the_limit_get_413(tmp_path: Path) -> None:
    with TestClient(create_app(quick_settings(tmp_path / "data", max_body_bytes=2048))) as client:
        big = {"prompt": "pop", "lyrics": "la " * 2000}
        response = client.post("/api/v1/songs", json=big)
        assert response.status_code == 413 and "larger than 2048 bytes" in response.json()["detail"]

        def chunks():  # no Content-Length: counted while it streams
            yield b'{"prompt": "pop", "lyrics": "'
            for _ in range(10):
                yield b"la " * 100
            yield b'"}'

        streamed = client.post(
            "/api/v1/songs", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert client.get("/api/v1/songs").json() == []


def test_rate_limits_answer_429_with_retry_after(tmp_path: Path) -> None:
    settings = quick_settings(tmp_path / "data", auth="accounts", rate_limit="5/minute")
    with TestClient(create_app(settings)) as client:
        alice, bob = add_user(client, "alice@example.com"), add_user(client, "bob@example.com")
        statuses = [client.get("/api/v1/songs", headers=alice).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        limited = client.get("/api/v1/songs", headers=alice)
        assert (
            1 <= int(limited.headers["retry-after"]) <= 60 and "too many requests" in limited.json()["detail"]
        )
        assert client.get("/api/v1/songs", headers=bob).status_code == 200  # per key, not global
        suno = client.get("/api/get", headers=alice)
        assert suno.status_code == 429 and "error" in suno.json() and suno.headers["retry-after"]


def _modal_studio(tmp_path: Path, **overrides: object) -> tuple[TestClient, list[str]]:
    settings = quick_settings(tmp_path / "data", runner="modal", **overrides)
    client = TestClient(create_app(settings))
    spawned: list[str] = []
    client.app.state.jobs.dispatcher = ModalDispatcher("refrain", spawn=spawned.append)  # type: ignore[attr-defined]
    return client, spawned


def test_the_modal_dispatcher_spawns_one_call_per_job_and_the_function_body_finishes_it(
    tmp_path: Path,
) -> None:
    client, spawned = _modal_studio(tmp_path)
    with client:
        job = client.post("/api/v1/songs", json=QUICK_SONG).json()
        assert spawned == [job["id"]]  # the request shape: the job id, nothing else
        assert client.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "queued"
        # what modal_app.run_job does in the GPU container: the same JobService.run
        assert client.app.state.jobs.run(job["id"]) == "complete"  # type: ignore[attr-defined]
        assert client.app.state.jobs.run(job["id"]) == "complete"  # a second delivery changes nothing
        done = client.get(f"/api/v1/jobs/{job['id']}").json()
        assert done["status"] == "complete" and done["attempts"] == 1


def test_running_jobs_are_capped_per_user_with_429(tmp_path: Path) -> None:
    client, spawned = _modal_studio(tmp_path, max_running_jobs=2)
    with client:
        assert [client.post("/api/v1/songs", json=QUICK_SONG).status_code for _ in range(2)] == [202, 202]
        third = client.post("/api/v1/songs", json=QUICK_SONG)
        assert third.status_code == 429 and third.headers["retry-after"] == "10"
        assert "still running" in third.json()["detail"] and len(spawned) == 2
        client.app.state.jobs.run(spawned[0])  # type: ignore[attr-defined]
        assert client.post("/api/v1/songs", json=QUICK_SONG).status_code == 202


def test_without_credits_a_request_gets_402_and_creates_nothing(tmp_path: Path) -> None:
    settings = quick_settings(tmp_path / "data", auth="accounts")
    with TestClient(create_app(settings)) as client:
        poor = add_user(client, "poor@example.com", monthly_credits=12)
        first = client.post("/api/v1/songs", json={**QUICK_SONG, "variations": 2}, headers=poor)
        assert first.status_code == 202  # 10 of 12 credits
        wait_job(client, first.json()["id"], poor)
        second = client.post("/api/v1/songs", json={**QUICK_SONG, "variations": 2}, headers=poor)
        assert second.status_code == 402 and "2 are left" in second.json()["detail"]
        assert client.post("/api/generate", json={"prompt": "pop"}, headers=poor).status_code == 402
        limit = client.get("/api/get_limit", headers=poor).json()
        assert limit == {"credits_left": 2, "period": "month", "monthly_limit": 12, "monthly_usage": 10}
        with client.app.state.sessions() as session:  # type: ignore[attr-defined]
            assert len(session.scalars(select(Job)).all()) == 1
            reasons = [e.reason for e in session.scalars(select(CreditEntry).order_by(CreditEntry.id))]
            assert reasons == ["allowance", "charge"]


def test_a_failed_job_gives_its_credits_back(tmp_path: Path) -> None:
    client, _ = _modal_studio(tmp_path)
    with client:
        job = client.post("/api/v1/songs", json=QUICK_SONG).json()
        assert client.get("/api/get_limit").json()["monthly_usage"] == 5
        client.app.state.settings.soundfont = str(tmp_path / "missing.sf2")  # type: ignore[attr-defined]
        client.app.state.jobs._engines.clear()  # type: ignore[attr-defined]
        assert client.app.state.jobs.run(job["id"]) == "error"  # type: ignore[attr-defined]
        failed = client.get(f"/api/v1/jobs/{job['id']}").json()
        assert failed["status"] == "error" and failed["songs"][0]["status"] == "error"
        assert client.get("/api/get_limit").json()["monthly_usage"] == 0


def test_the_studio_on_s3_storage_serves_presigned_urls(tmp_path: Path) -> None:
    with s3_server() as endpoint:
        create_bucket(endpoint, "refrain")
        settings = quick_settings(
            tmp_path / "data",
            storage="s3",
            s3_bucket="refrain",
            s3_endpoint_url=endpoint,
            s3_region=CREDENTIALS["region"],
            s3_access_key_id=CREDENTIALS["access_key_id"],
            s3_secret_access_key=CREDENTIALS["secret_access_key"],
        )
        with TestClient(create_app(settings)) as client:
            job = wait_job(client, client.post("/api/v1/songs", json=QUICK_SONG).json()["id"])
            assert job["status"] == "complete", job
            song = job["songs"][0]
            assert song["urls"]["m4a"].startswith(endpoint + "/refrain/songs/" + job["id"] + "/song.m4a?")
            status, headers, whole = fetch(song["urls"]["m4a"])
            assert status == 200 and headers["content-type"] == "audio/mp4" and len(whole) > 10_000
            status, _, part = fetch(song["urls"]["m4a"], {"Range": "bytes=0-99"})
            assert status == 206 and part == whole[:100]
            redirect = client.get(f"/files/{song['id']}/mp3", follow_redirects=False)
            assert redirect.status_code == 307 and redirect.headers["location"].startswith(endpoint)
            playlist = client.get(song["urls"]["hls"])
            segment = next(line for line in playlist.text.splitlines() if line and not line.startswith("#"))
            assert segment.startswith(endpoint) and fetch(segment)[0] == 200
            assert not list((tmp_path / "data" / "scratch").glob("*"))  # nothing left on the API's disk
