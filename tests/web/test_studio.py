"""The thin studio over HTTP: create, follow, list, play with range requests, and clear 4xx errors."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from functions.post.credentials import verify
from infra.db import Job, make_engine, make_sessions
from infra.settings import Settings
from tests.utils.databases import database_url
from web.main import create_app


def _settings(data_dir: Path, url: str | None = None) -> Settings:
    return Settings(data_dir=data_dir, environment="test", database_url=url)


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    with (
        database_url(request.param, tmp_path) as url,
        TestClient(create_app(_settings(tmp_path / "data", url))) as c,
    ):
        yield c


def _wait(client: TestClient, job_id: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    seen = set()
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        seen.add(job["stage"])
        if job["status"] in ("complete", "error"):
            job["seen_stages"] = seen
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_page_is_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "Create" in page.text
    assert client.get("/static/app.js").status_code == 200


def test_create_follow_play_download(client: TestClient) -> None:
    created = client.post(
        "/api/v1/songs", json={"prompt": "folk song about the sea", "duration_s": 12, "seed": 4}
    )
    assert created.status_code == 202
    job = _wait(client, created.json()["id"])
    assert job["status"] == "complete", job
    assert {"singing", "mastering"} & job["seen_stages"]
    assert len(job["songs"]) == 2
    song = job["songs"][0]
    assert set(song["urls"]) == {"wav", "m4a", "mp3", "flac", "preview.mp3", "hls"}
    assert song["metadata"]["content_credentials"] == "c2pa"
    assert abs(song["duration_s"] - 12) < 0.01 and song["metadata"]["ai_generated"] is True

    whole = client.get(song["urls"]["m4a"])
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/mp4"
    part = client.get(song["urls"]["m4a"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    assert client.head(song["urls"]["mp3"]).status_code == 200

    playlist = client.get(song["urls"]["hls"])
    assert playlist.status_code == 200 and "#EXTM3U" in playlist.text
    assert playlist.headers["content-type"] == "application/vnd.apple.mpegurl"
    segments = [line for line in playlist.text.splitlines() if line and not line.startswith("#")]
    assert segments and all(".m4s?exp=" in line for line in segments)  # signed like the playlist
    assert client.get(segments[0]).status_code == 200
    base = song["urls"]["hls"].split("?")[0].rsplit("/", 1)[0]
    assert client.get(f"{base}/..%2Fsong.wav").status_code == 404

    library = client.get("/api/v1/songs").json()
    assert [s["id"] for s in library] == [s["id"] for s in job["songs"]]  # variation 1 first
    assert client.get(f"/api/v1/songs/{song['id']}").json()["title"] == song["title"]


BAD = [
    ({"prompt": "", "lyrics": ""}, "give a prompt"),
    ({"prompt": "pop", "duration_s": 9}, "outside 10–240"),
    ({"prompt": "pop", "duration_s": 241}, "outside 10–240"),
    ({"prompt": "pop", "engine": "udio"}, "no udio engine (available: sketch)"),
    ({"prompt": "pop", "variations": 0}, "variations must be 1–4"),
    ({"prompt": "pop", "duration_s": "long"}, "duration_s"),
    ({"prompt": "pop", "key": "H major"}, "key"),
    (
        {"lyrics": "[verse]\n" + "\n".join(["the long road home again tonight"] * 30), "duration_s": 20},
        "shorten the lyrics",
    ),
]


@pytest.mark.parametrize(("body", "message"), BAD)
def test_bad_requests_get_422_with_a_message_and_create_nothing(
    client: TestClient, body: dict, message: str
) -> None:
    response = client.post("/api/v1/songs", json=body)
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert client.get("/api/v1/songs").json() == []


def test_downloads_carry_credentials(client: TestClient, tmp_path: Path) -> None:
    created = client.post(
        "/api/v1/songs",
        json={"prompt": "lofi beat", "instrumental": True, "duration_s": 10, "variations": 1, "seed": 2},
    )
    song = _wait(client, created.json()["id"])["songs"][0]
    root = client.app.state.settings.data_dir / "c2pa" / "root.pem"  # type: ignore[attr-defined]
    for fmt in ("m4a", "mp3", "wav", "flac"):
        path = tmp_path / f"download.{fmt}"
        path.write_bytes(client.get(song["urls"][fmt]).content)
        report = verify(path, root.read_bytes())
        assert report.state == "Trusted" and report.generation["seed"] == 2, fmt


def test_unknown_ids_and_formats_are_404(client: TestClient) -> None:
    assert client.get("/api/v1/jobs/nope").status_code == 404
    assert client.get("/api/v1/songs/nope").status_code == 404
    assert client.get("/files/nope/m4a").status_code == 404
    assert client.get("/files/..%2F..%2Fetc/passwd").status_code == 404


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/api/v1/songs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and "detail" in response.json()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_job_left_running_by_a_crash_is_finished_after_restart(kind: str, tmp_path: Path) -> None:
    with database_url(kind, tmp_path) as url:
        _restart_finishes_crashed_job(_settings(tmp_path / "data", url))


def _restart_finishes_crashed_job(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True)
    sessions = make_sessions(make_engine(settings.resolved_database_url))
    request = {
        "prompt": "lofi beat",
        "instrumental": True,
        "duration_s": 10,
        "seed": 1,
        "variations": 1,
        "engine": "sketch",
    }
    with sessions() as session:
        session.add(Job(id="crashed", request=request, status="running", stage="singing"))
        session.commit()
    with TestClient(create_app(settings)) as client:
        job = _wait(client, "crashed")
    assert job["status"] == "complete" and len(job["songs"]) == 1


def _read_sse(
    client: TestClient, job_id: str, last_event_id: str | None = None
) -> list[tuple[int, str, dict]]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    events, current = [], {}
    with client.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if "data" in current:
                    events.append(
                        (int(current["id"]), current.get("event", "message"), json.loads(current["data"]))
                    )
                current = {}
                continue
            field, _, value = line.partition(":")
            current[field] = value.strip()
    return events


def test_progress_streams_as_sse_and_resumes_without_gaps(client: TestClient) -> None:
    created = client.post(
        "/api/v1/songs", json={"prompt": "folk song", "duration_s": 10, "seed": 3, "variations": 1}
    )
    job_id = created.json()["id"]
    events = _read_sse(client, job_id)  # live: follows the job until it completes
    ids = [seq for seq, _, _ in events]
    assert ids == list(range(1, len(ids) + 1))
    assert events[-1][1] == "complete" and len(events[-1][2]["songs"]) == 1
    assert {"singing", "mastering"} & {data["stage"] for _, kind, data in events if kind == "progress"}
    # A client that dropped after event 3 reconnects with Last-Event-ID and gets exactly the rest.
    assert _read_sse(client, job_id, last_event_id="3") == events[3:]


def test_events_of_an_unknown_job_are_404(client: TestClient) -> None:
    assert client.get("/api/v1/jobs/nope/events").status_code == 404
