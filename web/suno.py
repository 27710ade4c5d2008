"""A Suno-compatible API (/api/...): the endpoints and JSON shapes that existing Suno API clients
(the widely used gcui-art/suno-api and the tools built on it) call. Clips are Refrain songs; errors
are `{"error": "..."}` as those clients expect. Refrain's own API is /api/v1."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException

from functions.errors import InvalidRequest
from functions.request import build_request
from infra.credits import balance
from infra.db import Job, Song
from infra.jobs import LimitExceeded, NotEnoughCredits
from web.deps import ServiceDep, SessionDep, UserDep, song_of
from web.routes import extension_job, file_url, stems_job, submit_request
from web.schemas import ExtendCreate, first_problem

DEFAULT_MODEL = "chirp-v3-5"
FEED_PAGE = 20
TYPES = {"generate": "gen", "extend": "extend", "stems": "stem"}


class SunoError(BaseModel):
    error: str


class SunoRoute(APIRoute):
    """Every failure of these routes, auth and validation included, answers {"error": message}."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except StarletteHTTPException as exc:  # FastAPI's own (a body it cannot parse) included
                return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)
            except RequestValidationError as exc:
                where, message = first_problem(exc, skip=("body", "query"))
                return JSONResponse({"error": f"{where}: {message}"}, 400)
            except InvalidRequest as exc:
                return JSONResponse({"error": exc.message}, 400)
            except LimitExceeded as exc:  # the running-job cap and rate limits (RateLimited)
                return JSONResponse({"error": str(exc)}, 429, headers={"Retry-After": str(exc.retry_after_s)})
            except NotEnoughCredits as exc:
                return JSONResponse({"error": str(exc)}, 402)

        return route


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": SunoError} for code in (400, 401, 402, 404, 409, 413, 429, 503)
}
router = APIRouter(prefix="/api", tags=["suno-compatible"], route_class=SunoRoute, responses=ERRORS)


class Clip(BaseModel):
    id: str
    title: str
    image_url: str | None
    lyric: str
    audio_url: str
    video_url: str
    created_at: str
    model_name: str
    gpt_description_prompt: str
    prompt: str
    status: str = Field(description="submitted | queue | streaming | complete | error")
    type: str
    tags: str
    negative_tags: str
    duration: float
    error_message: str


class GenerateBody(BaseModel):
    prompt: str = Field(default="", max_length=3000)
    make_instrumental: bool = False
    model: str | None = None
    wait_audio: bool = False


class CustomGenerateBody(GenerateBody):
    tags: str = Field(default="", max_length=1000)
    negative_tags: str = Field(default="", max_length=1000)
    title: str = Field(default="", max_length=200)


class ExtendBody(BaseModel):
    audio_id: str = Field(min_length=1, max_length=64)
    prompt: str = Field(default="", max_length=3000)
    continue_at: float | str | None = Field(default=None, description="seconds, or mm:ss")
    tags: str = Field(default="", max_length=1000)
    negative_tags: str = Field(default="", max_length=1000)
    title: str = Field(default="", max_length=200)
    model: str | None = None
    wait_audio: bool = False


class LyricsBody(BaseModel):
    prompt: str = Field(default="", max_length=3000)


class Lyrics(BaseModel):
    text: str
    title: str
    status: str


class StemsBody(BaseModel):
    audio_id: str = Field(min_length=1, max_length=64)


class StemClip(BaseModel):
    id: str
    status: str
    created_at: str
    title: str
    stem_from_id: str
    duration: float


class Limit(BaseModel):
    credits_left: int
    period: str
    monthly_limit: int
    monthly_usage: int


class AlignedWord(BaseModel):
    word: str
    start_s: float
    end_s: float
    success: bool
    p_align: float


def clip(request: Request, song: Song) -> Clip:
    complete = song.status == "complete"
    audio = file_url(request, song, "mp3") if complete and "mp3" in song.files else ""
    if audio.startswith("/"):
        audio = str(request.base_url).rstrip("/") + audio
    kind = song.song_metadata.get("kind", "generate")
    return Clip(
        id=song.id,
        title=song.title,
        image_url=None,
        lyric="\n".join(line for line in song.lyrics.splitlines() if line.strip()),
        audio_url=audio,
        video_url="",
        created_at=song.created_at.isoformat(),
        model_name=song.engine,
        gpt_description_prompt=song.prompt,
        prompt=song.lyrics,
        status=song.status,
        type=TYPES.get(kind, kind),
        tags=song.style,
        negative_tags=song.negative_style,
        duration=round(song.duration_s, 2),
        error_message=song.error_message or "",
    )


def _engine_for(request: Request, model: str | None) -> str:
    """Suno model names run on the studio's default engine; Refrain engine names pick that engine."""
    if not model or model.startswith("chirp"):
        return request.app.state.settings.default_engine
    engines = request.app.state.settings.engines()
    if model in engines:
        return model
    raise InvalidRequest("model", model, f"unknown model {model!r}; use a chirp-* name or one of {engines}")


def _clips_of(request: Request, job_id: str, wait: bool) -> list[Clip]:
    """The job's clips; with `wait`, once all are complete or failed (at most REFRAIN_WAIT_AUDIO_S)."""
    deadline = time.monotonic() + (request.app.state.settings.wait_audio_s if wait else 0)
    while True:
        with request.app.state.sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            songs = list(job.songs)
            if not wait or time.monotonic() >= deadline or job.status in ("complete", "error"):
                return [clip(request, s) for s in songs]
        time.sleep(0.5)


@router.post("/generate")
def generate(body: GenerateBody, request: Request, user: UserDep, service: ServiceDep) -> list[Clip]:
    """A song from a description: lyrics, style and title are written for it."""
    song_request = build_request(
        prompt=body.prompt, instrumental=body.make_instrumental, engine=_engine_for(request, body.model)
    )
    job = submit_request(request, service, user, song_request)
    return _clips_of(request, job.id, body.wait_audio)


@router.post("/custom_generate")
def custom_generate(
    body: CustomGenerateBody, request: Request, user: UserDep, service: ServiceDep
) -> list[Clip]:
    """A song from the caller's own lyrics (`prompt`), style tags and title."""
    song_request = build_request(
        lyrics="" if body.make_instrumental else body.prompt,
        prompt=body.tags if body.make_instrumental or not body.prompt.strip() else "",
        style_tags=body.tags,
        negative_tags=body.negative_tags,
        title=body.title,
        instrumental=body.make_instrumental,
        engine=_engine_for(request, body.model),
    )
    job = submit_request(request, service, user, song_request)
    return _clips_of(request, job.id, body.wait_audio)


def _seconds(value: float | str | None) -> float | None:
    if value is None or isinstance(value, float | int):
        return None if value is None else float(value)
    text = value.strip()
    if match := re.fullmatch(r"(\d+):([0-5]?\d(?:\.\d+)?)", text):
        return int(match[1]) * 60 + float(match[2])
    try:
        return float(text)
    except ValueError:
        raise InvalidRequest(
            "continue_at", value, "continue_at must be seconds (109.96) or mm:ss (01:49)"
        ) from None


@router.post("/extend_audio")
def extend_audio(
    body: ExtendBody, request: Request, user: UserDep, session: SessionDep, service: ServiceDep
) -> list[Clip]:
    """A clip that continues `audio_id` from `continue_at` with new lyrics (`prompt`)."""
    song = song_of(session, user, body.audio_id, "clip")
    _engine_for(request, body.model)
    extend = ExtendCreate(
        continue_at_s=_seconds(body.continue_at),
        lyrics=body.prompt,
        style=body.tags,
        negative=body.negative_tags,
        title=body.title,
    )
    job = extension_job(request, service, user, song, extend)
    return _clips_of(request, job.id, body.wait_audio)


@router.post("/generate_lyrics")
def generate_lyrics(body: LyricsBody, user: UserDep, service: ServiceDep) -> Lyrics:
    """Structured lyrics for a description, from the studio's lyricists (the template one last)."""
    if not body.prompt.strip():
        raise InvalidRequest("prompt", body.prompt, "give a prompt to write lyrics about")
    seed = (
        int.from_bytes(hashlib.sha256(body.prompt.encode()).digest()[:4]) % 2**31
    )  # same prompt, same lyrics
    written = service.lyricist().write(body.prompt, 120.0, seed)
    return Lyrics(text=written.lyrics, title=written.title, status="complete")


@router.post("/generate_stems")
def generate_stems(
    body: StemsBody, request: Request, user: UserDep, session: SessionDep, service: ServiceDep
) -> list[StemClip]:
    """Four stem clips (vocals, drums, bass, other) of a finished clip."""
    song = song_of(session, user, body.audio_id, "clip")
    job = stems_job(request, service, user, song)
    return [
        StemClip(
            id=c.id,
            status=c.status,
            created_at=c.created_at,
            title=c.title,
            stem_from_id=song.id,
            duration=c.duration,
        )
        for c in _clips_of(request, job.id, False)
    ]


@router.get("/get")
def get(
    request: Request,
    user: UserDep,
    session: SessionDep,
    ids: str | None = Query(default=None, max_length=2000),
    page: int = Query(default=0, ge=0, le=10_000),
) -> list[Clip]:
    """The caller's clips by id (comma-separated), or their feed, newest first, 20 a page."""
    query = select(Song).where(Song.user_id == user.id)
    if ids:
        wanted = [i.strip() for i in ids.split(",") if i.strip()][:100]
        query = query.where(Song.id.in_(wanted))
    else:
        query = (
            query.order_by(Song.created_at.desc(), Song.variation).offset(page * FEED_PAGE).limit(FEED_PAGE)
        )
    return [clip(request, s) for s in session.scalars(query).all()]


@router.get("/clip")
def get_clip(request: Request, user: UserDep, session: SessionDep, id: str = Query(max_length=64)) -> Clip:
    return clip(request, song_of(session, user, id, "clip"))


@router.get("/get_limit")
def get_limit(request: Request, user: UserDep, session: SessionDep) -> Limit:
    """The caller's real numbers: the free plan's are daily (as Suno's), the others monthly."""
    now = balance(session, request.app.state.settings, user)
    return Limit(
        credits_left=now.left,
        period=now.allowance.period,
        monthly_limit=now.allowance.credits,
        monthly_usage=now.used,
    )


@router.get("/get_aligned_lyrics")
def get_aligned_lyrics(
    user: UserDep, session: SessionDep, song_id: str = Query(max_length=64)
) -> list[AlignedWord]:
    """When each word is sung, as the engine placed it (the sketch engine knows exactly)."""
    song = song_of(session, user, song_id, "clip")
    if song.status != "complete":
        raise HTTPException(409, f"clip {song_id} is not finished yet")
    words = song.song_metadata.get("aligned_words")
    if words is None:
        raise HTTPException(404, f"the {song.engine} engine reported no word timings for clip {song_id}")
    return [
        AlignedWord(word=w["word"], start_s=w["start_s"], end_s=w["end_s"], success=True, p_align=1.0)
        for w in words
    ]
