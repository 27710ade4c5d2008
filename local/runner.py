"""The local runner: executes pipeline jobs in-process and records them in the library."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from functions.errors import InvalidRequest, RefrainError
from functions.gen import Engine, get_engine
from functions.pipeline import PostOptions, make_songs
from functions.post.encode import STUDIO_FORMATS
from functions.request import SongRequest
from infra.db import Job, JobEvent, Song
from infra.settings import Settings
from infra.storage import LocalStorage
from local.device import pick_device

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 0.2


class LocalRunner:
    """Runs jobs on a small thread pool; a job's state lives in the database, so restarts lose nothing."""

    def __init__(self, settings: Settings, sessions: sessionmaker, storage: LocalStorage) -> None:
        self.settings = settings
        self.sessions = sessions
        self.storage = storage
        self.device = pick_device(settings.device)
        self.signing = settings.signing_material()
        self._pool = ThreadPoolExecutor(max_workers=settings.worker_threads, thread_name_prefix="refrain-job")
        self._lock = threading.Lock()

    def engine(self, name: str) -> Engine:
        return get_engine(name, self.device, soundfont=self.settings.soundfont)

    def submit(self, request: SongRequest) -> str:
        with self.sessions() as session:
            job = Job(request=request.model_dump(mode="json"))
            session.add(job)
            session.commit()
            job_id = job.id
        self._pool.submit(self._run, job_id)
        return job_id

    def resume_unfinished(self) -> int:
        """Re-queue jobs a previous process left queued or running."""
        with self.sessions() as session:
            ids = session.scalars(select(Job.id).where(Job.status.in_(("queued", "running")))).all()
        for job_id in ids:
            shutil.rmtree(self.storage.song_dir(job_id), ignore_errors=True)
            self._pool.submit(self._run, job_id)
        return len(ids)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _update(self, job_id: str, kind: str = "progress", message: str = "", **fields: object) -> None:
        """Change the job row and append the matching event, in one transaction."""
        with self.sessions() as session:
            job = session.get(Job, job_id)
            if job is None:
                return
            for name, value in fields.items():
                setattr(job, name, value)
            _append_event(session, job, kind, message)
            session.commit()

    def _run(self, job_id: str) -> None:
        with self.sessions() as session:
            job = session.get(Job, job_id)
            if job is None or job.status in ("complete", "error"):
                return
            request = SongRequest(**job.request)
        self._update(job_id, status="running", stage="starting", step=0, total=0)
        last = [0.0]

        def on_progress(stage: str, step: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL_S or step == total:
                last[0] = now
                self._update(job_id, stage=stage, step=step, total=total)

        try:
            post = PostOptions(
                target_lufs=self.settings.target_lufs,
                ceiling_dbtp=self.settings.true_peak_dbtp,
                formats=STUDIO_FORMATS,
                hls=True,
                signing=self.signing,
                watermark=self.settings.watermark_backend(self.device),
                share_prompt=self.settings.share_prompt,
                ffmpeg=self.settings.ffmpeg,
            )
            outputs = make_songs(
                request,
                self.storage.song_dir(job_id),
                post=post,
                engine=self.engine(request.engine),
                on_progress=on_progress,
            )
        except (InvalidRequest, RefrainError) as exc:
            self._update(
                job_id,
                "error",
                str(exc),
                status="error",
                stage="error",
                error=str(exc),
                finished_at=datetime.now(UTC),
            )
            return
        except Exception as exc:  # a bug: keep the studio up, say what happened
            log.exception("job %s failed", job_id)
            self._update(
                job_id,
                "error",
                f"internal error: {exc}",
                status="error",
                stage="error",
                error=f"internal error: {exc}",
                finished_at=datetime.now(UTC),
            )
            return
        with self.sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            finished = datetime.now(UTC)  # one time for the whole job keeps its variations in order
            for out in outputs:
                session.add(
                    Song(
                        job_id=job_id,
                        variation=out.index,
                        title=out.title,
                        prompt=request.prompt,
                        lyrics=out.lyrics,
                        style=", ".join(request.style_tags),
                        engine=out.metadata["engine"],
                        seed=out.seed,
                        duration_s=out.duration_s,
                        files={fmt: self.storage.key_for(path) for fmt, path in out.files.items()},
                        song_metadata=out.metadata,
                        created_at=finished,
                    )
                )
            job.status, job.stage, job.finished_at = "complete", "complete", finished
            _append_event(session, job, "complete", "")
            session.commit()


def _append_event(session: Session, job: Job, kind: str, message: str) -> None:
    """The next event of `job` (one writer per job, so max + 1 is safe; the unique key guards it)."""
    last = session.scalar(select(func.max(JobEvent.seq)).where(JobEvent.job_id == job.id)) or 0
    session.add(
        JobEvent(
            job_id=job.id,
            seq=last + 1,
            kind=kind,
            stage=job.stage,
            step=job.step,
            total=job.total,
            message=message,
        )
    )
