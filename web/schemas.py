"""Request and response bodies of the studio's API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field


def first_problem(exc: RequestValidationError, skip: tuple[str, ...]) -> tuple[str, str]:
    """Where the first validation problem is (its location less the `skip` parts) and what it is."""
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in skip) or "body"
    return where, str(first.get("msg", "invalid"))


class SongCreate(BaseModel):
    prompt: str = ""
    lyrics: str = ""
    style: str = Field(default="", description="comma-separated style tags")
    negative: str = Field(default="", description="comma-separated tags to avoid")
    title: str = ""
    instrumental: bool = False
    duration_s: float = 30.0
    seed: int | None = None
    variations: int = 2
    engine: str | None = None
    bpm: float | None = None
    key: str | None = None
    time_signature: str | None = None


class ExtendCreate(BaseModel):
    continue_at_s: float | None = Field(
        default=None, description="where the continuation starts; end if unset"
    )
    prompt: str = ""
    lyrics: str = ""
    style: str = ""
    negative: str = ""
    title: str = ""
    duration_s: float = 30.0


class ReplaceCreate(BaseModel):
    """Replace a section: `start_s`–`end_s` made anew from the prompt / lyrics / style given
    (the song's own where left empty); the rest of the song stays exactly as it was."""

    start_s: float = Field(ge=0)
    end_s: float = Field(gt=0)
    prompt: str = ""
    lyrics: str = ""
    style: str = ""
    title: str = ""


class CoverCreate(BaseModel):
    """The song's music remade in another style; `strength` 1 follows the source closely."""

    style: str = Field(min_length=1, description="comma-separated style tags of the cover")
    prompt: str = ""
    lyrics: str = ""
    title: str = ""
    strength: float = Field(default=1.0, ge=0.0, le=1.0)


class ProblemPublic(BaseModel):
    detail: str
    field: str | None = None


class SharePublic(BaseModel):
    token: str
    url: str


class SongPublic(BaseModel):
    id: str
    job_id: str
    status: str
    error: str | None
    title: str
    prompt: str
    lyrics: str
    style: str
    engine: str
    seed: int
    duration_s: float
    created_at: datetime
    urls: dict[str, str]
    metadata: dict[str, Any]


class JobPublic(BaseModel):
    id: str
    kind: str
    status: str
    stage: str
    step: int
    total: int
    attempts: int
    error: str | None
    created_at: datetime
    songs: list[SongPublic]


class EnginesPublic(BaseModel):
    engines: list[str]
    default: str
