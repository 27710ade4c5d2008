"""SongRequest: everything a user can ask of a song engine, validated at the edge."""

from __future__ import annotations

import re
import secrets
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from functions.errors import InvalidRequest

MIN_DURATION_S = 10.0
MAX_DURATION_S = 240.0
MAX_VARIATIONS = 4
MAX_PROMPT_CHARS = 1000
MAX_LYRICS_CHARS = 6000
TIME_SIGNATURES = ("4/4", "3/4")
_KEY_RE = re.compile(r"^([A-G])([#b]?)\s*(major|minor|maj|min|m)?$", re.IGNORECASE)

Task = Literal["text2music", "extend", "repaint", "cover"]


class SongRequest(BaseModel):
    """One generation request; `variations` songs come back, seeds `seed`, `seed + 1`, …"""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: str = Field(default="", max_length=MAX_PROMPT_CHARS)
    lyrics: str = Field(default="", max_length=MAX_LYRICS_CHARS)
    style_tags: list[str] = Field(default_factory=list, max_length=32)
    negative_tags: list[str] = Field(default_factory=list, max_length=32)
    title: str = Field(default="", max_length=120)
    instrumental: bool = False
    duration_s: float = Field(default=30.0, ge=MIN_DURATION_S, le=MAX_DURATION_S)
    seed: int = Field(default_factory=lambda: secrets.randbelow(2**31), ge=0, lt=2**31)
    variations: int = Field(default=2, ge=1, le=MAX_VARIATIONS)
    bpm: float | None = Field(default=None, ge=40, le=240)
    key: str | None = None
    time_signature: str | None = None
    task: Task = "text2music"
    engine: str = "sketch"
    language: str = Field(default="en", pattern=r"^[a-z]{2,3}$", description="the vocals' language (ISO 639)")
    lora: str | None = Field(default=None, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")
    lora_scale: float = Field(default=1.0, ge=0.0, le=2.0)
    thinking: bool | None = Field(
        default=None, description="the ACE-Step planner; None: the variant's default"
    )

    @field_validator("style_tags", "negative_tags", mode="before")
    @classmethod
    def _split_tags(cls, value: object) -> object:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("key")
    @classmethod
    def _check_key(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not _KEY_RE.match(value.strip()):
            raise ValueError(f"key {value!r} is not a key like 'C major', 'F# minor' or 'Bbm'")
        return value.strip()

    @field_validator("time_signature")
    @classmethod
    def _check_time_signature(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if value.strip() not in TIME_SIGNATURES:
            raise ValueError(
                f"time signature {value!r} is not supported; use one of {', '.join(TIME_SIGNATURES)}"
            )
        return value.strip()

    @model_validator(mode="after")
    def _needs_something_to_sing(self) -> SongRequest:
        if not self.prompt.strip() and not self.lyrics.strip() and not self.style_tags:
            raise ValueError("give a prompt, or lyrics and a style")
        if self.task != "text2music":
            raise ValueError(f"task {self.task!r} needs a source song; only 'text2music' is available here")
        return self

    @property
    def beats_per_bar(self) -> int:
        return int((self.time_signature or "4/4").split("/")[0])


def parse_key(key: str) -> tuple[int, str]:
    """'F# minor' -> (pitch class 6, 'minor')."""
    match = _KEY_RE.match(key.strip())
    if not match:
        raise InvalidRequest("key", key, f"key {key!r} is not a key like 'C major' or 'F# minor'")
    letter, accidental, mode = match.groups()
    pitch_class = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}[letter.upper()]
    pitch_class = (pitch_class + {"#": 1, "b": -1, "": 0}[accidental]) % 12
    is_minor = (mode or "").lower() in ("minor", "min", "m")
    return pitch_class, "minor" if is_minor else "major"


def build_request(**fields: object) -> SongRequest:
    """Validate `fields` into a SongRequest, turning pydantic's report into one InvalidRequest line."""
    try:
        return SongRequest(**fields)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise invalid_from_validation(exc) from None


def invalid_from_validation(exc: ValidationError) -> InvalidRequest:
    """The first problem of a pydantic ValidationError as an InvalidRequest with a readable message."""
    error = exc.errors()[0]
    field = ".".join(str(p) for p in error.get("loc", ())) or "request"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    value = error.get("input")
    if field == "duration_s":
        message = f"duration {value} s is outside {MIN_DURATION_S:g}–{MAX_DURATION_S:g} s"
    elif field == "variations":
        message = f"variations must be 1–{MAX_VARIATIONS}, got {value}"
    elif field != "request":
        message = f"{field}: {message}"
    return InvalidRequest(field, value, message)
