"""Where song files live. The embedded default is a local directory; keys are stable paths."""

from __future__ import annotations

from pathlib import Path


class LocalStorage:
    """Files under `root`, addressed by keys like `songs/<job id>/song-2.m4a`."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def key_for(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def path_for(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"storage key {key!r} leaves the storage root")
        return path

    def song_dir(self, job_id: str) -> Path:
        return self.root / "songs" / job_id
