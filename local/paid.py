"""The bodies behind modal_app.py's wrappers, plain Python: the same code runs in a Modal container,
in the local runner, and in the tests (which call the wrappers' `.local()`)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from functions.gen import get_engine
from functions.pipeline import PostOptions, make_songs
from functions.post.encode import STUDIO_FORMATS
from functions.request import build_request
from infra.db import make_engine, make_sessions
from infra.jobs import JobService
from infra.settings import Settings
from infra.wiring import make_storage


class PaidWorker:
    """What one GPU container holds: the settings, the job service and the engine, loaded once."""

    def __init__(self, settings: Settings, device: str) -> None:
        self.settings = settings
        self.device = device
        sessions = make_sessions(make_engine(settings.resolved_database_url))
        self.jobs = JobService(
            settings, sessions, make_storage(settings), device, settings.signing_material()
        )
        self.engine = self.jobs.engine(settings.default_engine)  # weights load here, once a container

    def run_job(self, job_id: str) -> str:
        """One attempt of a studio job (the orchestrator spawned it); progress goes to the database."""
        return self.jobs.run(job_id)

    def generate(self, fields: dict[str, Any], formats: tuple[str, ...] = ("m4a",)) -> dict[str, bytes]:
        """Finished songs for `modal run`: the files' names and bytes (nothing is stored)."""
        request = build_request(**{"engine": self.settings.default_engine, **fields})
        engine = self.engine if request.engine == self.engine.name else get_engine(
            request.engine, self.device, **self.settings.engine_options()
        )  # fmt: skip
        post = PostOptions(
            target_lufs=self.settings.target_lufs,
            ceiling_dbtp=self.settings.true_peak_dbtp,
            formats=tuple(f for f in formats if f in STUDIO_FORMATS) or ("m4a",),
            signing=self.jobs.signing,
            watermark=self.settings.watermark_backend(self.device),
            ffmpeg=self.settings.ffmpeg,
        )
        with tempfile.TemporaryDirectory(prefix="refrain-paid-") as folder:
            songs = make_songs(request, Path(folder), post=post, engine=engine)
            return {path.name: path.read_bytes() for song in songs for path in song.files.values()}


def save_songs(files: dict[str, bytes], out_dir: Path) -> list[Path]:
    """Write what `generate` returned (the local side of `modal run modal_app.py`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = []
    for name, data in files.items():  # in the order the songs were made
        path = out_dir / Path(name).name  # a name, never a path from the other side
        path.write_bytes(data)
        saved.append(path)
    return saved
