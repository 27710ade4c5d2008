"""Which engines exist, and one loaded instance of each per process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from functions.errors import InvalidRequest, UnknownEngine
from functions.gen.engine import Engine

_FACTORIES: dict[str, Callable[..., Engine]] = {}
_LOADED: dict[tuple[str, str, tuple[tuple[str, object], ...]], Engine] = {}
_LOCK = threading.Lock()


def _sketch(soundfont: str | None = None, **_: object) -> Engine:
    from functions.gen.sketch import SketchEngine

    return SketchEngine(soundfont=soundfont)


def _acestep(
    weights: str | None = None,
    variant: str | None = None,
    lora_dir: str | None = None,
    planner: str | None = None,
    **_: object,
) -> Engine:
    from functions.gen.acestep import AceStepEngine

    if weights is None:
        raise InvalidRequest(
            "engine",
            "acestep",
            "the acestep engine needs its weights folder (--weights DIR or REFRAIN_ACESTEP_WEIGHTS)",
        )
    return AceStepEngine(weights, variant=variant, lora_dir=lora_dir, planner_weights=planner)


_FACTORIES["sketch"] = _sketch
_FACTORIES["acestep"] = _acestep


def known_engines() -> list[str]:
    return sorted(_FACTORIES)


def available_engines(acestep_weights: Path | None = None) -> list[str]:
    """The engines this studio can run: the sketch engine always, ACE-Step where its weights are."""
    installed = acestep_weights is not None and _has_acestep(acestep_weights)
    return [name for name in known_engines() if name != "acestep" or installed]


@lru_cache(maxsize=16)
def _has_acestep(weights: Path) -> bool:
    """Read once a process: submissions ask on every request (weights installed later need a
    restart, as loading them does)."""
    from functions.gen.acestep.engine import has_weights

    return has_weights(weights)


def get_engine(name: str, device: str = "cpu", **options: object) -> Engine:
    """The loaded engine called `name` (one per name, device and options), loading it on first use."""
    if name not in _FACTORIES:
        raise UnknownEngine(name, known_engines())
    key = (name, device, tuple(sorted(options.items())))
    with _LOCK:
        if key not in _LOADED:
            engine = _FACTORIES[name](**options)
            engine.load(device)
            _LOADED[key] = engine
        return _LOADED[key]
