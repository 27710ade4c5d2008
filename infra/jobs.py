"""Jobs: how a request becomes clips, whoever runs it (in-process pool, queue worker, Modal).

The database is the source of truth and makes every run idempotent:
- submission creates the job, its clips and the credit charge in one transaction;
- each attempt *claims* the job (attempts + 1, a fresh claim token) and only the attempt holding the
  newest claim may complete or fail it, so a job retried after its worker died completes exactly once;
- a job that ends as error gets its credits back, once (the ledger's unique (job, reason) key).
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from functions.errors import InvalidRequest, RefrainError
from functions.gen import Engine, get_engine
from functions.gen.engine import STEM_NAMES
from functions.gen.lyricist import Lyricist
from functions.pipeline import Finisher, PostOptions, extend_song, make_songs, make_stems, remake_song
from functions.post.credentials import SigningMaterial
from functions.post.encode import STUDIO_FORMATS
from functions.progress import ProgressFn
from functions.request import SongRequest
from infra.billing import record_usage
from infra.credits import (
    IN_PERIOD,
    PERIOD_COLUMNS,
    Balance,
    NotEnoughCredits,
    allowance,
    check_engine,
    entry,
    tier,
    write_allowance,
)
from infra.db import UNFINISHED, CreditEntry, Job, JobEvent, Song, User, new_id, utcnow
from infra.settings import Settings
from infra.storage import Storage

log = logging.getLogger(__name__)
PROGRESS_INTERVAL_S = 0.2


class LimitExceeded(RefrainError):
    """Too many unfinished jobs or requests: answered with 429 and Retry-After."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Superseded(RefrainError):
    """This attempt no longer owns its job (cancelled, or taken over by a newer attempt): stop."""


class Dispatcher(Protocol):
    name: str

    def dispatch(self, job_id: str) -> None: ...

    def shutdown(self) -> None: ...


_UNFINISHED_JOBS = (
    select(func.count())
    .select_from(Job)
    .where(Job.user_id == bindparam("user_id"), Job.status.in_(UNFINISHED))
    .scalar_subquery()
)
# the user's unfinished jobs and the period's ledger totals (see infra.credits), in one round trip
_LIMITS = select(_UNFINISHED_JOBS, *PERIOD_COLUMNS).where(IN_PERIOD)
_INSERT_JOB = insert(Job)
_INSERT_SONG = insert(Song)
_INSERT_CREDIT = insert(CreditEntry)
_INSERT_EVENT = insert(JobEvent)
_MARK_QUEUED = (
    update(Job)
    .where(Job.id == bindparam("the_job"), Job.status == "submitted")
    .values(status="queued", stage="queued")
    .execution_options(synchronize_session=False)
)
_CLIPS_QUEUED = (
    update(Song)
    .where(Song.job_id == bindparam("the_job"))
    .values(status="queue")
    .execution_options(synchronize_session=False)
)


def stored_request(job: Job) -> tuple[SongRequest, dict[str, Any]]:
    """The song request a job was submitted with, and its `Work` fields (kept beside it)."""
    fields = dict(job.request)
    work = fields.pop("_work", None) or {}
    return SongRequest(**fields), work


def _event_row(job_id: str, seq: int, stage: str, at: datetime) -> dict[str, Any]:
    return {
        "job_id": job_id, "seq": seq, "kind": "progress", "stage": stage, "step": 0, "total": 0,
        "message": "", "created_at": at,
    }  # fmt: skip


@dataclass(frozen=True)
class Work:
    """What a job asks for, beyond the song request itself."""

    kind: str = "generate"  # generate | extend | stems
    source_song_id: str | None = None  # extend / stems: the clip worked on
    continue_at_s: float | None = None  # extend: where the continuation starts
    start_s: float | None = None  # repaint: the section made anew
    end_s: float | None = None
    strength: float | None = None  # cover: how closely the source is followed
    lyrics_by: str = "user"


class JobService:
    """Creates, runs and finishes jobs; the dispatcher decides where `run` executes."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker,
        storage: Storage,
        device: str = "cpu",
        signing: SigningMaterial | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.storage = storage
        self.device = device
        self.signing = signing
        self.dispatcher: Dispatcher | None = None  # the free tier's runner (and everyone's by default)
        self.paid_dispatcher: Dispatcher | None = None  # the paid tier's (Modal); None: the same one
        self._engines: dict[str, Engine] = {}
        self._lyricist: Lyricist | None = None
        self.on_usage: Callable[[], None] | None = None  # nudges the usage reporter (infra.billing)
        self.finisher: Finisher | None = None  # None: finish songs in this process (see make_songs)

    def lyricist(self) -> Lyricist:
        if self._lyricist is None:
            self._lyricist = self.settings.make_lyricist(self.device)
        return self._lyricist

    def engine(self, name: str) -> Engine:
        if name not in self._engines:
            self._engines[name] = get_engine(name, self.device, **self.settings.engine_options())
        return self._engines[name]

    # --- submission -------------------------------------------------------------------------

    def submit(self, user_id: str, request: SongRequest, work: Work | None = None) -> Job:
        """Create the job, its clips and the charge at once, then hand the job to the dispatcher."""
        work = work or Work()
        clips = len(STEM_NAMES) if work.kind == "stems" else request.variations
        cost = self.settings.credits_per_clip * (1 if work.kind == "stems" else clips)
        with self.sessions() as session, session.begin():
            # the user's row lock serialises this user's submissions (PostgreSQL; SQLite has one writer)
            user = session.get(User, user_id, with_for_update=True)
            if user is None:
                raise InvalidRequest("user", user_id, "unknown user")
            check_engine(self.settings, user, request.engine)
            now, job_id = utcnow(), new_id()
            grant = allowance(self.settings, user, now)
            unfinished, *totals = session.execute(_LIMITS, {"user_id": user_id, "period": grant.key}).one()
            now_balance = Balance.of(grant, *totals)
            if (unfinished or 0) >= self.settings.max_running_jobs:
                raise LimitExceeded(
                    f"{unfinished} jobs are still running (at most {self.settings.max_running_jobs}); "
                    "try again when one finishes",
                    retry_after_s=10,
                )
            if now_balance.left < cost:
                raise NotEnoughCredits(
                    f"this needs {cost} credits and {now_balance.left} are left this {grant.period} "
                    f"(the {grant.plan} plan's allowance renews {grant.resets_at:%Y-%m-%d %H:%M} UTC)"
                )
            job_tier = tier(user)
            # Bulk inserts (no unit of work): submissions are the API's busiest writes. The objects
            # built here are transient: the response is made from them, never from a reload.
            if not now_balance.granted:
                write_allowance(session, user, grant, now)
            job_row = {
                "id": job_id,
                "user_id": user_id,
                "kind": work.kind,
                "tier": job_tier,
                "request": {
                    **request.model_dump(mode="json"),
                    "_work": {
                        "source_song_id": work.source_song_id,
                        "continue_at_s": work.continue_at_s,
                        "start_s": work.start_s,
                        "end_s": work.end_s,
                        "strength": work.strength,
                        "lyrics_by": work.lyrics_by,
                    },
                },
                "status": "submitted",
                "stage": "submitted",
                "step": 0,
                "total": 0,
                "attempts": 0,
                "credits": cost,
                "created_at": now,
            }
            song_rows = [
                {
                    "id": new_id(),
                    "job_id": job_id,
                    "user_id": user_id,
                    "variation": i,
                    "status": "submitted",
                    "title": request.title,
                    "prompt": request.prompt,
                    "lyrics": "" if request.instrumental else request.lyrics,
                    "style": ", ".join(request.style_tags),
                    "negative_style": ", ".join(request.negative_tags),
                    "engine": request.engine,
                    "seed": request.seed + i,
                    "duration_s": request.duration_s,
                    "files": {},
                    "song_metadata": {"kind": work.kind, "source_song_id": work.source_song_id},
                    "created_at": now,
                }
                for i in range(clips)
            ]
            session.execute(_INSERT_JOB, [job_row])
            session.execute(_INSERT_SONG, song_rows)
            if cost:
                charge = entry(user_id, -cost, "charge", grant.key, f"charge:{job_id}", job_id, now)
                session.execute(_INSERT_CREDIT, [charge])
            session.execute(_INSERT_EVENT, [_event_row(job_id, 1, "submitted", now)])
        job = Job(**job_row, error=None, claim=None, finished_at=None)
        job.songs = [Song(**row, error_message=None) for row in song_rows]
        if self.dispatch(job.id, job_tier):
            job.status = job.stage = "queued"  # what the database says now (the objects are detached)
            for song in job.songs:
                song.status = "queue"
        return job

    def dispatcher_for(self, job_tier: str) -> Dispatcher:
        assert self.dispatcher is not None, "JobService.dispatcher is not set"
        if job_tier == "paid" and self.paid_dispatcher is not None:
            return self.paid_dispatcher
        return self.dispatcher

    def dispatch(self, job_id: str, job_tier: str = "free") -> bool:
        """Hand the job to its tier's runner, then mark it queued (unless a runner has taken it
        already). If the hand-over fails the job stays `submitted`, durable, and `recover` sends it
        again."""
        dispatcher = self.dispatcher_for(job_tier)
        try:
            dispatcher.dispatch(job_id)
        except Exception:
            log.exception(
                "job %s could not be handed to the %s runner; kept for recovery", job_id, dispatcher.name
            )
            return False
        with self.sessions() as session, session.begin():
            moved = session.execute(_MARK_QUEUED, {"the_job": job_id}).rowcount
            if moved:  # the UPDATE holds the row and no attempt has claimed the job: its one event is #1
                session.execute(_CLIPS_QUEUED, {"the_job": job_id})
                session.execute(_INSERT_EVENT, [_event_row(job_id, 2, "queued", utcnow())])
        return True

    def recover(self) -> int:
        """At start: hand out again what a previous process accepted but never handed over.

        Inline jobs die with their process, so every unfinished one runs again; a queue keeps its
        own jobs, so only those that never reached it (still `submitted`) are sent again."""
        with self.sessions() as session:
            rows = session.execute(
                select(Job.id, Job.tier, Job.status)
                .where(Job.status.in_(UNFINISHED))
                .order_by(Job.created_at)
            ).all()
        sent = 0
        for job_id, job_tier, status in rows:
            dispatcher = self.dispatcher_for(job_tier)
            if status == "submitted" or dispatcher.name == "inline":  # a queue / Modal keeps its own
                dispatcher.dispatch(job_id)
                sent += 1
        return sent

    # --- running ----------------------------------------------------------------------------

    def run(self, job_id: str) -> str:
        """Run one attempt of the job; returns the job's status afterwards. Safe to call again for
        the same job at any time: a finished job is left alone, an unfinished one is taken over."""
        token = uuid.uuid4().hex
        with self.sessions() as session, session.begin():
            job = session.get(Job, job_id, with_for_update=True)
            if job is None:
                return "missing"
            if job.status in ("complete", "error"):
                return job.status
            job.claim = token
            exhausted = job.attempts >= self.settings.max_attempts
            if not exhausted:
                job.attempts += 1
                job.status, job.stage, job.step, job.total = "running", "starting", 0, 0
                session.execute(update(Song).where(Song.job_id == job_id).values(status="queue"))
                append_event(session, job, "progress", f"attempt {job.attempts}")
            attempts = job.attempts
            request, work_fields = stored_request(job)
            work = Work(kind=job.kind, **work_fields)
            clip_ids = [song.id for song in job.songs]  # ordered by variation (the relationship's order)
        if exhausted:
            return self._fail(
                job_id, token, f"gave up after {attempts} attempts (the worker stopped each time)"
            )
        last = [0.0]

        def on_progress(stage: str, step: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL_S or step == total:
                last[0] = now
                if not self._set(job_id, token, stage=stage, step=step, total=total):
                    raise Superseded(f"job {job_id} was cancelled or taken over")

        try:
            folder = self.storage.staging_dir(job_id)  # empty: an earlier attempt's files are gone
            outputs = self._execute(request, work, folder, on_progress, clip_ids)
            keys = self.storage.commit(folder, job_id)
        except Superseded:
            return self._status(job_id)
        except (InvalidRequest, RefrainError) as exc:
            return self._fail(job_id, token, str(exc))
        except Exception as exc:  # a bug: keep the service up, say what happened, refund
            log.exception("job %s failed", job_id)
            return self._fail(job_id, token, f"internal error: {exc}")
        return self._complete(job_id, token, outputs, keys, work)

    def post_options(self) -> PostOptions:
        return PostOptions(
            target_lufs=self.settings.target_lufs,
            ceiling_dbtp=self.settings.true_peak_dbtp,
            formats=STUDIO_FORMATS,
            hls=True,
            signing=self.signing,
            watermark=self.settings.watermark_backend(self.device),
            share_prompt=self.settings.share_prompt,
            ffmpeg=self.settings.ffmpeg,
        )

    def _execute(
        self, request: SongRequest, work: Work, folder: Path, on_progress: ProgressFn, clip_ids: list[str]
    ) -> list[Any]:
        engine = self.engine(request.engine)
        if work.kind in ("extend", "stems", "repaint", "cover"):
            assert work.source_song_id is not None
            with tempfile.TemporaryDirectory(prefix="refrain-source-") as tmp:
                source = self._source_wav(work.source_song_id, Path(tmp) / "source.wav")
                if work.kind == "stems":
                    return make_stems(
                        request,
                        source,
                        folder,
                        post=self.post_options(),
                        separator=self.settings.separator(self.device),
                        engine=engine,
                        on_progress=on_progress,
                    )
                if work.kind in ("repaint", "cover"):
                    edit = (
                        {"start_s": work.start_s, "end_s": work.end_s}
                        if work.kind == "repaint"
                        else {"strength": work.strength if work.strength is not None else 1.0}
                    )
                    return [
                        remake_song(
                            request,
                            source,
                            folder,
                            post=self.post_options(),
                            engine=engine,
                            task=work.kind,
                            on_progress=on_progress,
                            **edit,
                        )
                    ]
                assert work.continue_at_s is not None
                return [
                    extend_song(
                        request,
                        source,
                        work.continue_at_s,
                        folder,
                        post=self.post_options(),
                        engine=engine,
                        on_progress=on_progress,
                    )
                ]
        return make_songs(
            request,
            folder,
            post=self.post_options(),
            engine=engine,
            lyrics_by=work.lyrics_by,
            lyricist=self.lyricist(),
            song_ids=clip_ids or None,
            on_progress=on_progress,
            finish=self.finisher,
        )

    def _source_wav(self, song_id: str, path: Path) -> Path:
        with self.sessions() as session:
            song = session.get(Song, song_id)
            if song is None or "wav" not in song.files:
                raise InvalidRequest("audio_id", song_id, f"clip {song_id} has no finished audio")
            key = song.files["wav"]
        self.storage.download(key, path)
        return path

    def _complete(
        self, job_id: str, token: str, outputs: list[Any], keys: dict[Path, str], work: Work
    ) -> str:
        key_of = {path.resolve(): key for path, key in keys.items()}
        with self.sessions() as session, session.begin():
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.claim != token or job.status != "running":
                return job.status if job else "missing"  # a newer attempt owns the job now
            finished = datetime.now(UTC)  # one time for the whole job keeps its clips in order
            clips = {s.variation: s for s in job.songs}
            for out in outputs:
                song = clips.get(out.index)
                if song is None:  # a job accepted before clips were made at submission
                    song = Song(
                        job_id=job.id,
                        user_id=job.user_id,
                        variation=out.index,
                        prompt=job.request.get("prompt", ""),
                        style=", ".join(job.request.get("style_tags", [])),
                    )
                    session.add(song)
                song.status = "complete"
                song.title = out.title
                song.lyrics = out.lyrics
                song.seed = out.seed
                song.duration_s = out.duration_s
                song.engine = out.metadata["engine"]
                files = {fmt: key_of[path.resolve()] for fmt, path in out.files.items()}
                files.update({f"stem:{name}": key_of[path.resolve()] for name, path in out.stems.items()})
                song.files = files
                song.song_metadata = {
                    **out.metadata,
                    "kind": work.kind,
                    "source_song_id": work.source_song_id,
                }
                song.created_at = finished
            job.status, job.stage, job.finished_at = "complete", "complete", finished
            append_event(session, job, "complete", "")
            if job.tier == "paid":  # the usage, in the same transaction as the songs it bills for
                record_usage(session, self.settings, job, finished)
        if job.tier == "paid" and self.on_usage is not None:
            self.on_usage()
        return "complete"

    def _fail(self, job_id: str, token: str | None, message: str) -> str:
        """End the job as error with one refund; `token` None: whoever holds the claim (cancel)."""
        with self.sessions() as session, session.begin():
            job = session.get(Job, job_id, with_for_update=True)
            if (
                job is None
                or (token is not None and job.claim != token)
                or job.status in ("complete", "error")
            ):
                return job.status if job else "missing"
            job.claim = None
            job.status, job.stage, job.error, job.finished_at = "error", "error", message, datetime.now(UTC)
            session.execute(
                update(Song).where(Song.job_id == job_id).values(status="error", error_message=message)
            )
            if job.credits:
                # back into the period the charge came from (a job failing after midnight does not
                # top up the new day's allowance)
                charged = session.scalar(
                    select(CreditEntry.period).where(CreditEntry.key == f"charge:{job.id}")
                )
                if charged is not None:
                    refund = entry(job.user_id, job.credits, "refund", charged, f"refund:{job.id}", job.id)
                    try:
                        with session.begin_nested():
                            session.execute(_INSERT_CREDIT, [refund])
                    except IntegrityError:
                        pass  # refunded already
            append_event(session, job, "error", message)
        return "error"

    def _set(self, job_id: str, token: str, **fields: object) -> bool:
        """Change the job row and append the matching progress event, in one transaction; only the
        attempt holding the claim may (False: it does not any more)."""
        with self.sessions() as session, session.begin():
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.claim != token or job.status != "running":
                return False
            for name, value in fields.items():
                setattr(job, name, value)
            append_event(session, job, "progress", "")
        return True

    def _status(self, job_id: str) -> str:
        with self.sessions() as session:
            return session.scalar(select(Job.status).where(Job.id == job_id)) or "missing"

    def cancel(self, job_id: str) -> str:
        """Stop an unfinished job: it ends as error, its credits come back and nothing is metered.
        A running attempt notices at its next progress report and stops; whatever it would have
        finished is discarded (it no longer holds the claim)."""
        return self._fail(job_id, None, "cancelled")

    def shutdown(self) -> None:
        for dispatcher in {id(d): d for d in (self.dispatcher, self.paid_dispatcher) if d}.values():
            dispatcher.shutdown()


def append_event(session: Session, job: Job, kind: str, message: str) -> None:
    """The next event of `job` (callers hold the job's row lock, so max + 1 is safe; the unique key
    guards it anyway)."""
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
