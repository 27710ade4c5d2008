"""Song engines, the lyricist and the engine registry."""

from functions.gen.engine import Engine, RenderedSong
from functions.gen.registry import get_engine, known_engines

__all__ = ["Engine", "RenderedSong", "get_engine", "known_engines"]
