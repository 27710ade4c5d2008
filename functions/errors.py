"""Typed errors that the edges (CLI, HTTP) turn into exit code 2 or a 4xx with a message."""

from __future__ import annotations

from typing import Any


class RefrainError(Exception):
    """Base of every error Refrain raises on purpose."""


class InvalidRequest(RefrainError, ValueError):
    """The user's request cannot be served as asked; `field` and `value` name what is wrong."""

    def __init__(self, field: str, value: Any, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.message = message


class UnknownEngine(InvalidRequest):
    """The request names an engine that is not installed or not known."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__("engine", name, f"unknown engine {name!r}; known engines: {', '.join(known)}")
        self.known = known


class MissingTool(RefrainError):
    """A system program or data file the studio needs is not installed."""
