"""The job service on its own: what a studio job records about each clip."""

from __future__ import annotations

from pathlib import Path

from functions.post.watermark import message_for
from functions.request import build_request
from infra.db import LOCAL_USER_ID, make_engine, make_sessions
from infra.jobs import JobService
from infra.queue import ModalDispatcher
from infra.storage import LocalStorage
from tests.utils.checkpoints import tiny_audioseal
from tests.utils.studio import quick_settings


def test_the_audioseal_payload_points_back_to_the_stored_clip(tmp_path: Path) -> None:
    settings = quick_settings(
        tmp_path / "data",
        watermark="audioseal",
        audioseal_generator=tiny_audioseal("generator", tmp_path),
        audioseal_detector=tiny_audioseal("detector", tmp_path),
    )
    settings.data_dir.mkdir(parents=True)
    sessions = make_sessions(make_engine(settings.resolved_database_url))
    service = JobService(settings, sessions, LocalStorage(settings.data_dir))
    service.dispatcher = ModalDispatcher("refrain", spawn=lambda job_id: None)
    request = build_request(prompt="lofi beat", instrumental=True, duration_s=10, variations=2, seed=4)
    job = service.submit(LOCAL_USER_ID, request)
    assert service.run(job.id) == "complete"
    with sessions() as session:
        from infra.db import Job

        finished = session.get(Job, job.id)
        assert finished is not None
        for song in finished.songs:
            mark = song.song_metadata["watermark"]
            assert mark["backend"] == "audioseal" and mark["song_id"] == song.id
            assert mark["message"] == message_for(song.id)
