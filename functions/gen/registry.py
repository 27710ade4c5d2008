"""Which engines exist, and one loaded instance of each per process."""

from __future__ import annotations

import threading
from collections.abc import Callable

from functions.errors import UnknownEngine
from functions.gen.engine import Engine

_FACTORIES: dict[str, Callable[..., Engine]] = {}
_LOADED: dict[tuple[str, str, tuple[tuple[str, object], ...]], Engine] = {}
_LOCK = threading.Lock()


def _sketch(soundfont: str | None = None, **_: object) -> Engine:
    from functions.gen.sketch import SketchEngine

    return SketchEngine(soundfont=soundfont)


_FACTORIES["sketch"] = _sketch


def known_engines() -> list[str]:
    return sorted(_FACTORIES)


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
