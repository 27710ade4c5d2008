"""The interface every song engine implements: load once, generate many."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from functions.progress import ProgressFn
from functions.request import SongRequest

STEM_NAMES = ("vocals", "drums", "bass", "other")


@dataclass
class RenderedSong:
    """One finished take from an engine, before mastering."""

    audio: np.ndarray  # float32 [channels=2, samples]
    sample_rate_hz: int
    seed: int
    engine: str
    model_version: str
    title: str
    lyrics: str
    stems: dict[str, np.ndarray] | None = None  # name -> float32 [2, samples]; sums to `audio`
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.audio.shape[1] / self.sample_rate_hz


class Engine(Protocol):
    """A song engine. `load` is called once per process; `generate` many times."""

    name: str
    model_version: str

    def load(self, device: str = "cpu") -> None: ...

    def generate(self, request: SongRequest, *, on_progress: ProgressFn) -> list[RenderedSong]: ...
