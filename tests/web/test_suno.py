"""The Suno-compatible API: the request and response JSON that Suno API clients send and read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from tests.utils.studio import quick_settings
from web.main import create_app

CLIP_FIELDS = {
    "id",
    "title",
    "image_url",
    "lyric",
    "audio_url",
    "video_url",
    "created_at",
    "model_name",
    "gpt_description_prompt",
    "prompt",
    "status",
    "type",
    "tags",
    "negative_tags",
    "duration",
    "error_message",
}


@pytest.fixture(scope="module")
def suno(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("suno")
    with TestClient(create_app(quick_settings(folder / "data", wait_audio_s=240))) as client:
        yield client


@pytest.fixture(scope="module")
def generated(suno: TestClient) -> list[dict]:
    response = suno.post(
        "/api/generate",
        json={"prompt": "a calm folk song about the sea", "make_instrumental": False, "wait_audio": True},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_generate_returns_two_finished_clips_with_every_field(
    generated: list[dict], suno: TestClient
) -> None:
    assert isinstance(generated, list) and len(generated) == 2  # Suno-style: 2 clips by default
    for clip in generated:
        assert set(clip) == CLIP_FIELDS
        assert clip["status"] == "complete" and clip["type"] == "gen" and clip["model_name"] == "sketch"
        assert clip["gpt_description_prompt"] == "a calm folk song about the sea"
        assert clip["lyric"] and "\n\n" not in clip["lyric"]  # Suno clients get lyrics without blank lines
        assert clip["prompt"].startswith("[")  # the structured lyrics
        assert clip["audio_url"].startswith("http://testserver/files/") and clip["duration"] == 30.0
        audio = suno.get(clip["audio_url"])
        assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"


def test_generate_without_waiting_answers_at_once_with_submitted_clips(suno: TestClient) -> None:
    clips = suno.post("/api/generate", json={"prompt": "lofi beat", "make_instrumental": True}).json()
    assert len(clips) == 2 and {c["status"] for c in clips} <= {"submitted", "queue", "complete"}
    assert all(c["audio_url"] == "" or c["status"] == "complete" for c in clips)
    ids = ",".join(c["id"] for c in clips)
    assert [c["id"] for c in suno.get(f"/api/get?ids={ids}").json()] != []


def test_custom_generate_sings_the_callers_lyrics(suno: TestClient) -> None:
    lyrics = "[verse]\nsalt on the window\nlight on the bay\n[chorus]\nhold the line\nhold the line"
    clips = suno.post(
        "/api/custom_generate",
        json={
            "prompt": lyrics,
            "tags": "folk, acoustic",
            "negative_tags": "metal",
            "title": "Harbour",
            "make_instrumental": False,
            "wait_audio": True,
        },
    ).json()
    assert len(clips) == 2
    clip = clips[0]
    assert (
        clip["title"] == "Harbour" and clip["tags"] == "folk, acoustic" and clip["negative_tags"] == "metal"
    )
    assert "salt on the window" in clip["prompt"] and clip["gpt_description_prompt"] == ""
    words = suno.get(f"/api/get_aligned_lyrics?song_id={clip['id']}").json()
    assert [w["word"] for w in words[:3]] == ["salt", "on", "the"]
    assert set(words[0]) == {"word", "start_s", "end_s", "success", "p_align"}
    starts = [w["start_s"] for w in words]
    assert starts == sorted(starts) and all(w["end_s"] > w["start_s"] for w in words)


def test_get_clip_and_feed(suno: TestClient, generated: list[dict]) -> None:
    one = suno.get(f"/api/clip?id={generated[0]['id']}").json()
    assert set(one) == CLIP_FIELDS and one["id"] == generated[0]["id"]
    both = suno.get(f"/api/get?ids={generated[0]['id']},{generated[1]['id']}").json()
    assert {c["id"] for c in both} == {c["id"] for c in generated}
    feed = suno.get("/api/get").json()
    assert len(feed) <= 20 and {c["id"] for c in generated} <= {
        c["id"] for c in feed + suno.get("/api/get?page=1").json()
    }


def test_get_limit_counts_credits(suno: TestClient) -> None:
    limit = suno.get("/api/get_limit").json()
    assert set(limit) == {"credits_left", "period", "monthly_limit", "monthly_usage"}
    assert (
        limit["credits_left"] == limit["monthly_limit"] - limit["monthly_usage"]
        and limit["monthly_usage"] >= 10
    )


def test_generate_lyrics(suno: TestClient) -> None:
    lyrics = suno.post("/api/generate_lyrics", json={"prompt": "a song about trains at night"}).json()
    assert set(lyrics) == {"text", "title", "status"} and lyrics["status"] == "complete"
    assert "[verse]" in lyrics["text"].lower() and lyrics["title"]


def test_extend_audio_continues_a_clip(suno: TestClient, generated: list[dict]) -> None:
    source = generated[0]
    clips = suno.post(
        "/api/extend_audio",
        json={
            "audio_id": source["id"],
            "prompt": "[verse]\nthe tide comes home\n[chorus]\nhome again",
            "continue_at": "00:20",
            "wait_audio": True,
        },
    ).json()
    assert len(clips) == 1 and clips[0]["status"] == "complete" and clips[0]["type"] == "extend"
    assert abs(clips[0]["duration"] - (20 + 30)) < 0.1  # 20 s of the source, then a new 30 s part


def test_generate_stems_makes_four_stem_clips(suno: TestClient, generated: list[dict]) -> None:
    stems = suno.post("/api/generate_stems", json={"audio_id": generated[0]["id"]}).json()
    assert len(stems) == 4
    for stem in stems:
        assert set(stem) == {"id", "status", "created_at", "title", "stem_from_id", "duration"}
        assert stem["stem_from_id"] == generated[0]["id"]
    job_id = suno.get(f"/api/v1/songs/{stems[0]['id']}").json()["job_id"]
    from tests.utils.studio import wait_job

    job = wait_job(suno, job_id)
    assert job["status"] == "complete", job
    titles = [s["title"] for s in job["songs"]]
    assert [t.rsplit("(", 1)[1] for t in titles] == ["vocals)", "drums)", "bass)", "other)"]
    assert all(s["urls"]["wav"] for s in job["songs"])


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("POST", "/api/extend_audio", {}, 400, "audio_id"),
        ("POST", "/api/generate_stems", {}, 400, "audio_id"),
        ("POST", "/api/generate", {"prompt": ""}, 400, "give a prompt"),
        ("POST", "/api/generate", {"prompt": "pop", "model": "udio-v2"}, 400, "unknown model"),
        ("POST", "/api/generate", "not json", 400, "JSON"),
        ("GET", "/api/clip", None, 400, "id"),
        ("GET", "/api/clip?id=nope", None, 404, "no clip"),
        ("GET", "/api/get_aligned_lyrics", None, 400, "song_id"),
        ("POST", "/api/extend_audio", {"audio_id": "nope"}, 404, "no clip"),
        ("POST", "/api/generate_lyrics", {"prompt": ""}, 400, "prompt"),
    ],
)
def test_bad_requests_get_an_error_object(
    suno: TestClient, method: str, path: str, body: object, status: int, message: str
) -> None:
    if isinstance(body, str):
        response = suno.request(method, path, content=body, headers={"content-type": "application/json"})
    else:
        response = suno.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"} and message.lower() in response.json()["error"].lower()


def test_generated_lyrics_are_the_same_for_the_same_prompt_in_any_process() -> None:
    import subprocess
    import sys

    code = (
        "from starlette.testclient import TestClient; from web.main import create_app; "
        "from tests.utils.studio import quick_settings; import tempfile, pathlib; "
        "c = TestClient(create_app(quick_settings(pathlib.Path(tempfile.mkdtemp())))); "
        "print(c.post('/api/generate_lyrics', json={'prompt': 'ocean waves'}).json()['text'])"
    )
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)]  # fmt: skip
    assert runs[0] == runs[1] and "[verse]" in runs[0]  # Python's hash() differs per process; ours does not
