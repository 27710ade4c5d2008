"""Real songs for tests, made by the sketch engine (loaded once per test process)."""

from __future__ import annotations

from functools import cache
from typing import Any

from functions.gen.engine import RenderedSong
from functions.gen.sketch import SketchEngine
from functions.request import build_request


@cache
def sketch_engine() -> SketchEngine:
    engine = SketchEngine()
    engine.load()
    return engine


def sketch_song(**request_fields: Any) -> RenderedSong:
    """The first variation of a sketch-engine song for these request fields (one variation by default)."""
    request = build_request(**{"variations": 1, **request_fields})
    return sketch_engine().generate(request, on_progress=lambda *_: None)[0]
