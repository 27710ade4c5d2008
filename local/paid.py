"""The bodies behind modal_app.py's wrappers, plain Python: the same code runs in a Modal container,
in the local runner, and in the tests (which call the wrappers' `.local()`)."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from functions.gen import RenderedSong
from functions.pipeline import PostOptions, SongOutput, finish_song, make_songs
from functions.post.encode import STUDIO_FORMATS
from functions.request import SongRequest, build_request
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
        engine = self.jobs.engine(request.engine)  # loaded once per container
        formats = tuple(f for f in formats if f in STUDIO_FORMATS) or ("m4a",)
        post = dataclasses.replace(self.jobs.post_options(), formats=formats, hls=False)
        with tempfile.TemporaryDirectory(prefix="refrain-paid-") as folder:
            songs = make_songs(request, Path(folder), post=post, engine=engine, finish=self.jobs.finisher)
            return {path.name: path.read_bytes() for song in songs for path in song.files.values()}


class RemoteFinisher:
    """Hands the finishing chain (watermark, mastering, encodings, HLS, signing) to a CPU function:
    a GPU-second costs ~50 CPU-seconds (docs/pricing.md). `call` is that function's `.remote` (or
    `.local` in tests); the files come back as bytes and land where in-process finishing puts them."""

    def __init__(self, call: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.call = call

    def __call__(
        self,
        song: RenderedSong,
        index: int,
        request: SongRequest,
        base_name: str,
        post: PostOptions,
        stage: Path,
        stem_stage: Path | None,
        written_by: str,
        song_id: str | None = None,
    ) -> SongOutput:
        payload = {
            "song": dataclasses.asdict(song), "index": index, "request": request.model_dump(mode="json"),
            "base_name": base_name, "formats": list(post.formats), "hls": post.hls,
            "target_lufs": post.target_lufs, "ceiling_dbtp": post.ceiling_dbtp,
            "share_prompt": post.share_prompt,
            "stems": stem_stage is not None, "written_by": written_by, "song_id": song_id,
        }  # fmt: skip
        done = self.call(payload)
        for root, blobs in ((stage, done["blobs"]), (stem_stage, done["stem_blobs"])):
            for relative, data in blobs.items():
                assert root is not None and ".." not in Path(relative).parts
                (root / relative).parent.mkdir(parents=True, exist_ok=True)
                (root / relative).write_bytes(data)
        return SongOutput(
            index=done["index"], title=done["title"], seed=done["seed"], duration_s=done["duration_s"],
            lyrics=done["lyrics"], files={k: stage / v for k, v in done["files"].items()},
            stems={k: stem_stage / v for k, v in done["stems"].items()} if stem_stage else {},
            metadata=done["metadata"],
        )  # fmt: skip


def finish_remotely(payload: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """The CPU function's body: finish one song with this container's signing key and watermark."""
    settings = settings or Settings()
    device = "cpu"
    post = PostOptions(
        target_lufs=payload["target_lufs"],
        ceiling_dbtp=payload["ceiling_dbtp"],
        formats=tuple(payload["formats"]),
        hls=payload["hls"],
        signing=settings.signing_material(),
        watermark=settings.watermark_backend(device),
        separator=settings.separator(device) if payload["stems"] else None,
        share_prompt=payload["share_prompt"],
        ffmpeg=settings.ffmpeg,
    )
    song = RenderedSong(**payload["song"])
    request = SongRequest(**payload["request"])
    with tempfile.TemporaryDirectory(prefix="refrain-finish-") as folder:
        stage, stem_stage = Path(folder) / "stage", Path(folder) / "stems"
        stage.mkdir()
        stem_stage.mkdir()
        stems_to = stem_stage if payload["stems"] else None
        out = finish_song(song, payload["index"], request, payload["base_name"], post, stage, stems_to,
                          payload["written_by"], payload["song_id"])  # fmt: skip
        return {
            "index": out.index, "title": out.title, "seed": out.seed, "duration_s": out.duration_s,
            "lyrics": out.lyrics, "metadata": out.metadata,
            "files": {k: str(p.relative_to(stage)) for k, p in out.files.items()},
            "stems": {k: str(p.relative_to(stem_stage)) for k, p in out.stems.items()},
            "blobs": _blobs(stage), "stem_blobs": _blobs(stem_stage),
        }  # fmt: skip


def _blobs(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def make_and_save(
    generate: Callable[[dict[str, Any]], dict[str, bytes]],
    prompt: str,
    out_dir: Path,
    duration_s: float = 30.0,
    seed: int = -1,
    variations: int = 1,
) -> list[Path]:
    """`modal run modal_app.py --prompt …`: songs made by `generate` (the Engine's, remote), saved here."""
    fields: dict[str, Any] = {"prompt": prompt, "duration_s": duration_s, "variations": variations}
    if seed >= 0:
        fields["seed"] = seed
    saved = save_songs(generate(fields), out_dir)
    for path in saved:
        print(path)
    return saved


def save_songs(files: dict[str, bytes], out_dir: Path) -> list[Path]:
    """Write what `generate` returned (the local side of `modal run modal_app.py`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = []
    for name, data in files.items():  # in the order the songs were made
        path = out_dir / Path(name).name  # a name, never a path from the other side
        path.write_bytes(data)
        saved.append(path)
    return saved
