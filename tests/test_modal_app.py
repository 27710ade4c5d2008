"""modal_app.py imports offline (no Modal token), declares what the paid tier needs, and its wrappers
run the very bodies the local runner runs: their `.local()` paths are called here on the sketch
engine and give the same bytes as calling the body directly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from functions.request import build_request
from infra.db import LOCAL_USER_ID, Job
from infra.settings import Settings
from local.paid import PaidWorker, make_and_save, save_songs

SONG = {
    "prompt": "lofi beat for studying",
    "instrumental": True,
    "duration_s": 10,
    "variations": 1,
    "seed": 3,
}


@pytest.fixture
def studio_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """What the container's secrets and image would set, pointed at a local studio."""
    for name, value in {
        "REFRAIN_DATA_DIR": str(tmp_path / "data"),
        "REFRAIN_DEFAULT_ENGINE": "sketch",
        "REFRAIN_WATERMARK": "none",
        "REFRAIN_SIGN": "false",
        "REFRAIN_ENVIRONMENT": "test",
    }.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "data").mkdir()
    yield tmp_path


def test_the_app_imports_offline_and_declares_its_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODAL_TOKEN_ID", raising=False)
    monkeypatch.delenv("MODAL_TOKEN_SECRET", raising=False)
    import modal_app

    options = modal_app.ENGINE_OPTIONS
    assert options["gpu"] == "A100-80GB"
    assert list(options["volumes"]) == ["/weights"] and "refrain-weights" in repr(
        options["volumes"]["/weights"]
    )
    assert [repr(s).split("'")[1] for s in options["secrets"]] == [
        "refrain-database", "refrain-r2", "refrain-c2pa", "refrain-app",
    ]  # fmt: skip
    assert options["retries"].max_retries == 2 and options["timeout"] == 600
    assert options["scaledown_window"] == 15 * 60 and options["max_containers"] == 8
    assert "refrain-stripe" in repr(modal_app.WEB_OPTIONS["secrets"][-1])  # only the API holds Stripe keys
    assert Settings().modal_app == modal_app.APP_NAME  # what the API's dispatcher looks up
    finishing = modal_app.FINISH_OPTIONS
    assert "gpu" not in finishing and finishing["cpu"] == 4.0 and finishing["retries"].max_retries == 2


def test_the_wrappers_run_the_same_bodies_as_the_local_runner(studio_env: Path) -> None:
    import modal_app

    through_modal = modal_app.Engine().generate.local(SONG, ("wav",))  # finished by the CPU function's body
    direct = PaidWorker(Settings(), "cpu").generate(SONG, ("wav",))  # finished in-process
    assert list(through_modal) == ["song.wav"] and through_modal == direct  # byte for byte
    saved = save_songs(through_modal, studio_env / "out")  # `modal run`'s local side
    assert [p.name for p in saved] == ["song.wav"] and saved[0].read_bytes() == direct["song.wav"]


def test_run_job_finishes_a_studio_job(studio_env: Path) -> None:
    import modal_app

    worker = PaidWorker(Settings(), "cpu")
    worker.jobs.dispatcher = _Nowhere()
    job = worker.jobs.submit(LOCAL_USER_ID, build_request(**SONG))
    assert modal_app.Engine().run_job.local(job.id) == "complete"
    with worker.jobs.sessions() as session:
        done = session.get(Job, job.id)
        assert done is not None and done.status == "complete"
        # finished by the CPU function's body: every studio format, the HLS stream included
        assert {"wav", "m4a", "mp3", "flac", "preview.mp3", "hls"} <= set(done.songs[0].files)


def test_weights_are_fetched_only_at_a_pinned_commit(tmp_path: Path) -> None:
    from functions.errors import InvalidRequest
    from local.weights import fetch_weights

    with pytest.raises(InvalidRequest, match="pin a commit id"):
        fetch_weights("ACE-Step/acestep-v15-xl-turbo-diffusers", "main", tmp_path)


class _Nowhere:
    """A dispatcher that keeps jobs queued: the test runs them through the Modal wrapper."""

    name = "modal"

    def dispatch(self, job_id: str) -> None:
        pass

    def shutdown(self) -> None:
        pass


def test_modal_runs_entrypoint_body_saves_the_engines_songs(studio_env: Path) -> None:
    import modal_app

    saved = make_and_save(modal_app.Engine().generate.local, "lofi beat", studio_env / "songs", 10.0, 4, 2)
    assert [p.name for p in saved] == ["song.m4a", "song-2.m4a"] and all(
        p.stat().st_size > 1000 for p in saved
    )
