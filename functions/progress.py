"""The one progress callback shape every body reports through: on_progress(stage, step, total)."""

from __future__ import annotations

from typing import Protocol


class ProgressFn(Protocol):
    def __call__(self, stage: str, step: int, total: int) -> None: ...


def no_progress(stage: str, step: int, total: int) -> None:
    """Default callback: report nothing."""
