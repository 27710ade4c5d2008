"""The studio's API: create songs, follow jobs, list the library, fetch files (with range requests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import FileResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from functions.gen import known_engines
from functions.pipeline import prepare
from functions.request import build_request
from infra.db import Job, JobEvent, Song
from local.runner import LocalRunner
from web.schemas import EnginesPublic, JobPublic, SongCreate, SongPublic

router = APIRouter(prefix="/api/v1")
files_router = APIRouter()
MEDIA_TYPES = {
    "m4a": "audio/mp4",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "preview.mp3": "audio/mpeg",
}
SSE_POLL_S = 0.25
SSE_MAX_S = 15 * 60  # a stream ends by itself; EventSource reconnects with Last-Event-ID
HLS_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".m4s": "video/iso.segment", ".mp4": "audio/mp4"}


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def get_runner(request: Request) -> LocalRunner:
    return request.app.state.runner


SessionDep = Annotated[Session, Depends(get_session)]
RunnerDep = Annotated[LocalRunner, Depends(get_runner)]


def song_public(song: Song) -> SongPublic:
    return SongPublic(
        id=song.id,
        job_id=song.job_id,
        title=song.title,
        prompt=song.prompt,
        lyrics=song.lyrics,
        style=song.style,
        engine=song.engine,
        seed=song.seed,
        duration_s=song.duration_s,
        created_at=song.created_at,
        metadata=song.song_metadata,
        urls={
            fmt: f"/files/{song.id}/hls/index.m3u8" if fmt == "hls" else f"/files/{song.id}/{fmt}"
            for fmt in song.files
        },
    )


def job_public(job: Job) -> JobPublic:
    return JobPublic(
        id=job.id,
        status=job.status,
        stage=job.stage,
        step=job.step,
        total=job.total,
        error=job.error,
        created_at=job.created_at,
        songs=[song_public(s) for s in job.songs],
    )


@router.get("/engines")
def list_engines(request: Request) -> EnginesPublic:
    return EnginesPublic(engines=known_engines(), default=request.app.state.settings.default_engine)


@router.post("/songs", status_code=202)
def create_songs(body: SongCreate, runner: RunnerDep, session: SessionDep) -> JobPublic:
    """Queue a request; answers at once with the job to follow. Bad requests get 422 and one message."""
    fields = body.model_dump(exclude_none=True)
    fields["style_tags"] = fields.pop("style", "")
    fields["negative_tags"] = fields.pop("negative", "")
    fields.setdefault("engine", runner.settings.default_engine)
    song_request = build_request(**fields)  # InvalidRequest -> 422 (see main.py)
    engine = runner.engine(song_request.engine)
    prepare(song_request, engine)  # lyrics that cannot fit the duration are refused now, not later
    job = session.get(Job, runner.submit(song_request))
    assert job is not None
    return job_public(job)


@router.get("/jobs/{job_id}")
def get_job(job_id: str, session: SessionDep) -> JobPublic:
    job = session.get(Job, job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job_public(job)


def existing_job_id(job_id: str, session: SessionDep) -> str:
    """404 before a stream starts: inside the stream it would be too late to send a status."""
    if session.get(Job, job_id) is None:
        raise HTTPException(404, f"no job {job_id}")
    return job_id


@router.get("/jobs/{job_id}/events", response_class=EventSourceResponse)
async def job_events(
    job_id: Annotated[str, Depends(existing_job_id)],
    request: Request,
    last_event_id: Annotated[str | None, Header()] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Progress as Server-Sent Events, replayed from the durable event log: a client reconnecting with
    Last-Event-ID gets every later event, none twice. The stream ends after the job's last event."""
    sessions = request.app.state.sessions
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    deadline = time.monotonic() + SSE_MAX_S
    while time.monotonic() < deadline:
        events, job = await run_in_threadpool(_events_after, sessions, job_id, after)
        for event in events:
            after = event.seq
            data: dict[str, object] = {
                "stage": event.stage,
                "step": event.step,
                "total": event.total,
                "message": event.message,
            }
            if event.kind == "complete" and job is not None:
                data["songs"] = [song_public(s).model_dump(mode="json") for s in job.songs]
            yield ServerSentEvent(id=str(event.seq), event=event.kind, data=data)
            if event.kind in ("complete", "error"):
                return
        if await request.is_disconnected():
            return
        await asyncio.sleep(SSE_POLL_S)


def _events_after(sessions: sessionmaker, job_id: str, after: int) -> tuple[list[JobEvent], Job | None]:
    with sessions() as session:
        events = list(
            session.scalars(
                select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > after).order_by(JobEvent.seq)
            )
        )
        job = session.get(Job, job_id) if any(e.kind == "complete" for e in events) else None
        if job is not None:
            _ = list(job.songs)  # load them while the session is open
        return events, job


@router.get("/songs")
def list_songs(session: SessionDep, limit: int = 100) -> list[SongPublic]:
    limit = max(1, min(limit, 500))
    songs = session.scalars(select(Song).order_by(Song.created_at.desc(), Song.variation).limit(limit)).all()
    return [song_public(s) for s in songs]


@router.get("/songs/{song_id}")
def get_song(song_id: str, session: SessionDep) -> SongPublic:
    song = session.get(Song, song_id)
    if song is None:
        raise HTTPException(404, f"no song {song_id}")
    return song_public(song)


@files_router.api_route("/files/{song_id}/hls/{name}", methods=["GET", "HEAD"])
def get_hls_file(song_id: str, name: str, request: Request, session: SessionDep) -> FileResponse:
    """The song's HLS playlist and segments, for in-browser streaming."""
    song = session.get(Song, song_id)
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    if (
        song is None
        or "hls" not in song.files
        or "/" in name
        or name.startswith(".")
        or suffix not in HLS_TYPES
    ):
        raise HTTPException(404, f"no HLS file {name} for song {song_id}")
    path = request.app.state.storage.path_for(song.files["hls"]).parent / name
    if not path.is_file():
        raise HTTPException(404, f"no HLS file {name} for song {song_id}")
    return FileResponse(path, media_type=HLS_TYPES[suffix])


@files_router.api_route("/files/{song_id}/{fmt}", methods=["GET", "HEAD"])
def get_file(song_id: str, fmt: str, request: Request, session: SessionDep) -> FileResponse:
    """The song's file; Starlette answers Range requests (206) so players can seek."""
    song = session.get(Song, song_id)
    if song is None or fmt not in MEDIA_TYPES or fmt not in song.files:
        raise HTTPException(404, f"no {fmt} file for song {song_id}")
    path = request.app.state.storage.path_for(song.files[fmt])
    if not path.is_file():
        raise HTTPException(404, f"the {fmt} file of song {song_id} is missing from storage")
    filename = f"{song.title or 'song'}-{song.variation + 1}.{fmt}".replace("/", "-")
    return FileResponse(
        path, media_type=MEDIA_TYPES[fmt], filename=filename, content_disposition_type="inline"
    )
