"""The studio's own versioned API (/api/v1) and its file routes.

Every song and job route answers only its owner (others get 404, as for an id that does not exist);
a share link makes one song readable by anyone holding it. File URLs in responses are ready to fetch:
presigned by S3, or signed and expiring when the API serves local files itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload, sessionmaker
from starlette.concurrency import run_in_threadpool

from functions.errors import InvalidRequest
from functions.pipeline import EDITS, prepare
from functions.request import SongRequest, build_request
from infra.accounts import create_share_link, shared_song_id
from infra.db import Job, JobEvent, ShareLink, Song, User
from infra.jobs import JobService, Work, stored_request
from web.deps import JobDep, ServiceDep, SessionDep, SongDep, UserDep, resolve_user
from web.schemas import (
    CoverCreate,
    EnginesPublic,
    ExtendCreate,
    JobPublic,
    ProblemPublic,
    ReplaceCreate,
    SharePublic,
    SongCreate,
    SongPublic,
)

router = APIRouter(prefix="/api/v1")
files_router = APIRouter()
MEDIA_TYPES = {
    "m4a": "audio/mp4",
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "preview.mp3": "audio/mpeg",
}
HLS_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".m4s": "video/iso.segment", ".mp4": "audio/mp4"}
SSE_POLL_S = 0.25
SSE_MAX_S = 15 * 60  # a stream ends by itself; EventSource reconnects with Last-Event-ID
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ProblemPublic} for code in (401, 402, 404, 413, 422, 429, 503)
}


def file_url(request: Request, song: Song, fmt: str) -> str:
    """A URL anyone holding it may fetch until it expires."""
    storage = request.app.state.storage
    if fmt != "hls":
        presigned = storage.presigned_url(song.files[fmt], _download_name(song, fmt))
        if presigned is not None:
            return presigned
        return request.app.state.signer.sign(f"/files/{song.id}/{fmt}")
    return request.app.state.signer.sign(f"/files/{song.id}/hls/index.m3u8")


def song_public(request: Request, song: Song) -> SongPublic:
    formats = [fmt for fmt in song.files if fmt in MEDIA_TYPES or fmt == "hls"]
    return SongPublic(
        id=song.id,
        job_id=song.job_id,
        status=song.status,
        title=song.title,
        prompt=song.prompt,
        lyrics=song.lyrics,
        style=song.style,
        engine=song.engine,
        seed=song.seed,
        duration_s=song.duration_s,
        created_at=song.created_at,
        metadata=song.song_metadata,
        error=song.error_message,
        urls={fmt: file_url(request, song, fmt) for fmt in formats} if song.status == "complete" else {},
    )


def job_public(request: Request, job: Job) -> JobPublic:
    return JobPublic(
        id=job.id,
        kind=job.kind,
        status=job.status,
        stage=job.stage,
        step=job.step,
        total=job.total,
        attempts=job.attempts,
        error=job.error,
        created_at=job.created_at,
        songs=[song_public(request, s) for s in job.songs],
    )


@router.get("/engines")
def list_engines(request: Request) -> EnginesPublic:
    """The engines this studio can run (ACE-Step only where its weights are installed)."""
    settings = request.app.state.settings
    return EnginesPublic(engines=settings.engines(), default=settings.default_engine)


def submit_request(
    request: Request, service: JobService, user: User, song_request: SongRequest, work: Work | None = None
) -> Job:
    """Shared by our API and the Suno-compatible one: limits, lyrics, then the job."""
    request.app.state.limits.hit(request.state.principal, submission=True)
    engines = request.app.state.settings.engines()
    if song_request.engine not in engines:
        message = f"this studio has no {song_request.engine} engine (available: {', '.join(engines)})"
        raise InvalidRequest("engine", song_request.engine, message)
    local = song_request.engine in request.app.state.settings.local_engines()
    engine = service.engine(song_request.engine) if local else None  # None: it runs on Modal
    # lyrics are written (and checked against the duration) now, so a bad request fails at once
    song_request, written_by = prepare(song_request, engine, service.lyricist())
    return service.submit(user.id, song_request, replace(work or Work(), lyrics_by=written_by))


@router.post("/songs", status_code=202, responses=ERRORS)
def create_songs(body: SongCreate, request: Request, user: UserDep, service: ServiceDep) -> JobPublic:
    """Queue a request; answers at once with the job to follow (its clips included)."""
    fields = body.model_dump(exclude_none=True)
    fields["style_tags"] = fields.pop("style", "")
    fields["negative_tags"] = fields.pop("negative", "")
    fields.setdefault("engine", service.settings.default_engine)
    song_request = build_request(**fields)  # InvalidRequest -> 422 (see main.py)
    return job_public(request, submit_request(request, service, user, song_request))


@router.post("/songs/{song_id}/extend", status_code=202, responses=ERRORS)
def extend_song(
    body: ExtendCreate, song: SongDep, request: Request, user: UserDep, service: ServiceDep
) -> JobPublic:
    """A new clip: this one up to `continue_at_s`, then a continuation in the same tempo and key."""
    job = extension_job(request, service, user, song, body)
    return job_public(request, job)


def extension_job(request: Request, service: JobService, user: User, song: Song, body: ExtendCreate) -> Job:
    if song.status != "complete":
        raise HTTPException(409, f"song {song.id} is not finished yet")
    if body.continue_at_s is not None and not 0 < body.continue_at_s <= song.duration_s:
        raise HTTPException(422, f"continue_at must be within the song (0 to {song.duration_s:.1f} s)")
    meta = song.song_metadata
    song_request = build_request(
        prompt=body.prompt or song.prompt,
        lyrics=body.lyrics,
        style_tags=body.style or song.style,
        negative_tags=body.negative or song.negative_style,
        title=body.title or song.title,
        instrumental=not body.lyrics and meta.get("vocal") == "none",
        duration_s=body.duration_s,
        seed=song.seed + 1000,
        variations=1,
        engine=song.engine,
        bpm=meta.get("bpm"),
        key=meta.get("key"),
        time_signature=meta.get("time_signature"),
    )
    at = body.continue_at_s if body.continue_at_s is not None else song.duration_s
    return submit_request(
        request, service, user, song_request, Work(kind="extend", source_song_id=song.id, continue_at_s=at)
    )


@router.post("/songs/{song_id}/replace", status_code=202, responses={**ERRORS, 409: {"model": ProblemPublic}})
def replace_section(
    body: ReplaceCreate, song: SongDep, request: Request, user: UserDep, service: ServiceDep
) -> JobPublic:
    """A new clip: this one with `start_s`–`end_s` made anew (engines that edit audio: acestep)."""
    if not body.start_s < body.end_s <= song.duration_s:
        raise HTTPException(422, f"the section must lie within the song (0 to {song.duration_s:.1f} s)")
    fields = {"prompt": body.prompt, "lyrics": body.lyrics, "style": body.style, "title": body.title}
    work = Work(kind="repaint", source_song_id=song.id, start_s=body.start_s, end_s=body.end_s)
    return job_public(request, _edit_job(request, service, user, song, fields, work))


@router.post("/songs/{song_id}/cover", status_code=202, responses={**ERRORS, 409: {"model": ProblemPublic}})
def cover_song(
    body: CoverCreate, song: SongDep, request: Request, user: UserDep, service: ServiceDep
) -> JobPublic:
    """A new clip: this one's music in the style given (engines that edit audio: acestep)."""
    fields = {"prompt": body.prompt, "lyrics": body.lyrics, "style": body.style, "title": body.title}
    work = Work(kind="cover", source_song_id=song.id, strength=body.strength)
    return job_public(request, _edit_job(request, service, user, song, fields, work))


def _edit_job(
    request: Request, service: JobService, user: User, song: Song, fields: dict[str, str], work: Work
) -> Job:
    if song.status != "complete":
        raise HTTPException(409, f"song {song.id} is not finished yet")
    settings = request.app.state.settings
    remote = song.engine not in settings.local_engines() and song.engine in settings.engines()
    if not remote and not (work.kind in EDITS and hasattr(service.engine(song.engine), work.kind)):
        raise HTTPException(422, f"the {song.engine} engine cannot {work.kind} a song; make it with acestep")
    meta = song.song_metadata
    song_request = build_request(
        prompt=fields["prompt"] or song.prompt,
        lyrics=fields["lyrics"] or song.lyrics,
        style_tags=fields["style"] or song.style,
        negative_tags=song.negative_style,
        title=fields["title"] or song.title,
        instrumental=meta.get("vocal") == "none",
        duration_s=max(song.duration_s, 10.0),
        seed=song.seed + 2000,
        variations=1,
        engine=song.engine,
        bpm=meta.get("bpm"),
        key=meta.get("key"),
    )
    return submit_request(request, service, user, song_request, work)


@router.post("/songs/{song_id}/stems", status_code=202, responses=ERRORS)
def create_stems(song: SongDep, request: Request, user: UserDep, service: ServiceDep) -> JobPublic:
    """Four clips, one per stem (vocals, drums, bass, other)."""
    return job_public(request, stems_job(request, service, user, song))


def stems_job(request: Request, service: JobService, user: User, song: Song) -> Job:
    if song.status != "complete":
        raise HTTPException(409, f"song {song.id} is not finished yet")
    if song.song_metadata.get("kind", "generate") != "generate":
        raise HTTPException(422, "stems can be made of generated songs, not of extensions or stems")
    with request.app.state.sessions() as session:
        job = session.get(Job, song.job_id)
        assert job is not None
        original, _ = stored_request(job)
    song_request = original.model_copy(
        update={"seed": song.seed, "variations": 1, "lyrics": song.lyrics, "title": song.title}
    )
    request.app.state.limits.hit(request.state.principal, submission=True)
    return service.submit(user.id, song_request, Work(kind="stems", source_song_id=song.id))


@router.get("/jobs/{job_id}", responses=ERRORS)
async def get_job(job_id: str, request: Request, user: UserDep) -> JobPublic:
    """The job and its clips: the polling alternative to /events. On PostgreSQL one async query."""
    reader = request.app.state.reader
    if reader is not None:
        job = await reader.job(job_id)
    else:
        job = await run_in_threadpool(_load_job, request.app.state.sessions, job_id)
    if job is None or job.user_id != user.id:
        raise HTTPException(404, f"no job {job_id}")
    return job_public(request, job)


@router.post("/jobs/{job_id}/cancel", responses={**ERRORS, 409: {"model": ProblemPublic}})
def cancel_job(job: JobDep, request: Request, service: ServiceDep) -> JobPublic:
    """Stop an unfinished job: its clips end as error, its credits come back, nothing is billed."""
    if job.status in ("complete", "error"):
        raise HTTPException(409, f"job {job.id} has finished already ({job.status})")
    service.cancel(job.id)
    finished = _load_job(request.app.state.sessions, job.id)
    assert finished is not None
    return job_public(request, finished)


def _load_job(sessions: sessionmaker, job_id: str) -> Job | None:
    with sessions() as session:
        return session.get(Job, job_id, options=[joinedload(Job.songs)])


@router.get("/jobs/{job_id}/events", response_class=EventSourceResponse, responses=ERRORS)
async def job_events(
    job: JobDep,
    request: Request,
    last_event_id: Annotated[str | None, Header()] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Progress as Server-Sent Events, replayed from the durable event log: a client reconnecting with
    Last-Event-ID gets every later event, none twice. The stream ends after the job's last event,
    which carries the finished clips and their URLs."""
    sessions = request.app.state.sessions
    job_id = job.id
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    deadline = time.monotonic() + SSE_MAX_S
    while time.monotonic() < deadline:
        events, finished = await run_in_threadpool(_events_after, sessions, job_id, after)
        for event in events:
            after = event.seq
            data: dict[str, object] = {
                "stage": event.stage,
                "step": event.step,
                "total": event.total,
                "message": event.message,
            }
            if event.kind == "complete" and finished is not None:
                data["songs"] = [song_public(request, s).model_dump(mode="json") for s in finished.songs]
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
    job = _load_job(sessions, job_id) if any(e.kind == "complete" for e in events) else None
    return events, job


@router.get("/songs", responses=ERRORS)
def list_songs(
    request: Request,
    user: UserDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    status: Annotated[str | None, Query(pattern="^(submitted|queue|complete|error)$")] = None,
) -> list[SongPublic]:
    """The caller's songs, newest first."""
    query = select(Song).where(Song.user_id == user.id)
    if status is not None:
        query = query.where(Song.status == status)
    songs = session.scalars(query.order_by(Song.created_at.desc(), Song.variation).limit(limit)).all()
    return [song_public(request, s) for s in songs]


@router.get("/songs/{song_id}", responses=ERRORS)
def get_song(song: SongDep, request: Request) -> SongPublic:
    return song_public(request, song)


@router.delete("/songs/{song_id}", status_code=204, responses=ERRORS)
def delete_song(song: SongDep, request: Request, session: SessionDep) -> Response:
    """Deletes the song and its files (credits spent on it stay spent)."""
    if song.status in ("submitted", "queue"):
        raise HTTPException(409, f"song {song.id} is still being made")
    storage = request.app.state.storage
    for fmt, key in song.files.items():
        if fmt == "hls":
            storage.delete_prefix(key.rsplit("/", 1)[0])
        else:
            storage.delete(key)
    session.delete(song)  # its share links go with it (ON DELETE CASCADE)
    session.commit()
    return Response(status_code=204)


@router.post("/songs/{song_id}/share", status_code=201, responses=ERRORS)
def share_song(song: SongDep, request: Request, session: SessionDep) -> SharePublic:
    """A link that lets anyone holding it play and download this song (read-only)."""
    if song.status != "complete":
        raise HTTPException(409, f"song {song.id} is not finished yet")
    link = create_share_link(session, song.id, song.user_id)
    session.commit()
    return SharePublic(token=link.token, url=f"/api/v1/shared/{link.token}")


@router.delete("/songs/{song_id}/share", status_code=204, responses=ERRORS)
def unshare_song(song: SongDep, session: SessionDep) -> Response:
    """Revokes every share link of the song."""
    session.execute(
        update(ShareLink)
        .where(ShareLink.song_id == song.id, ShareLink.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    session.commit()
    return Response(status_code=204)


@router.get("/shared/{token}", responses=ERRORS)
def get_shared(token: str, request: Request, session: SessionDep) -> SongPublic:
    """A shared song: no account needed."""
    song_id = shared_song_id(session, token)
    song = session.get(Song, song_id) if song_id else None
    if song is None or song.status != "complete":
        raise HTTPException(404, "no such shared song (the link may have been revoked)")
    return song_public(request, song)


# --- files -------------------------------------------------------------------------------------


def _download_name(song: Song, fmt: str) -> str:
    return f"{song.title or 'song'}-{song.variation + 1}.{fmt}".replace("/", "-").replace('"', "'")


def _readable_song(request: Request, session: Session, song_id: str, path: str) -> Song:
    """A valid signature on this path, or the owner asking: anything else is 404."""
    song = session.get(Song, song_id)
    if song is None:
        raise HTTPException(404, f"no song {song_id}")
    if request.app.state.signer.valid(path, request.query_params.get("exp"), request.query_params.get("sig")):
        return song
    try:
        user = resolve_user(request, session)
    except HTTPException:
        user = None
    if user is None or user.id != song.user_id:
        raise HTTPException(404, f"no song {song_id}")
    return song


def _serve(request: Request, key: str, media_type: str, filename: str | None = None) -> Response:
    storage = request.app.state.storage
    path = storage.local_path(key)
    if path is None:  # S3: the client fetches (and seeks) from the bucket itself
        url = storage.presigned_url(key, filename)
        return RedirectResponse(url, status_code=307)
    if not path.is_file():
        raise HTTPException(404, "the file is missing from storage")
    if filename:
        return FileResponse(path, media_type=media_type, filename=filename, content_disposition_type="inline")
    return FileResponse(path, media_type=media_type)


@files_router.get("/files/{song_id}/hls/{name}", responses=ERRORS)
@files_router.head("/files/{song_id}/hls/{name}", include_in_schema=False)
def get_hls_file(song_id: str, name: str, request: Request, session: SessionDep) -> Response:
    """The song's HLS playlist (its segment URLs signed like the playlist's) and segments."""
    song = _readable_song(request, session, song_id, f"/files/{song_id}/hls/{name}")
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    if "hls" not in song.files or "/" in name or name.startswith(".") or suffix not in HLS_TYPES:
        raise HTTPException(404, f"no HLS file {name} for song {song_id}")
    folder = song.files["hls"].rsplit("/", 1)[0]
    key = f"{folder}/{name}"
    if suffix != ".m3u8":
        return _serve(request, key, HLS_TYPES[suffix])
    storage = request.app.state.storage
    if not storage.exists(key):
        raise HTTPException(404, f"no HLS file {name} for song {song_id}")
    signer = request.app.state.signer

    def url(segment: str) -> str:
        return storage.presigned_url(f"{folder}/{segment}") or signer.sign(f"/files/{song_id}/hls/{segment}")

    lines = []
    for line in storage.read_bytes(key).decode().splitlines():
        if line.startswith("#EXT-X-MAP:URI="):
            line = f'#EXT-X-MAP:URI="{url(line.split("=", 1)[1].strip(chr(34)))}"'
        elif line and not line.startswith("#"):
            line = url(line)
        lines.append(line)
    return Response(
        "\n".join(lines) + "\n", media_type=HLS_TYPES[".m3u8"], headers={"Cache-Control": "private"}
    )


@files_router.get("/files/{song_id}/{fmt}", responses=ERRORS)
@files_router.head("/files/{song_id}/{fmt}", include_in_schema=False)
def get_file(song_id: str, fmt: str, request: Request, session: SessionDep) -> Response:
    """The song's file; range requests (206) let players seek, here or at the bucket."""
    song = _readable_song(request, session, song_id, f"/files/{song_id}/{fmt}")
    if fmt not in MEDIA_TYPES or fmt not in song.files:
        raise HTTPException(404, f"no {fmt} file for song {song_id}")
    return _serve(request, song.files[fmt], MEDIA_TYPES[fmt], _download_name(song, fmt))
