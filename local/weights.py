"""Model weights onto the weights volume (or a folder on the Mac), from the Hugging Face hub, at a
pinned revision: a commit someone checked, never a moving branch."""

from __future__ import annotations

import re
from pathlib import Path

from functions.errors import InvalidRequest

COMMIT = re.compile(r"^[0-9a-f]{40}$")


def fetch_weights(repo_id: str, revision: str, folder: Path) -> Path:
    """Download `repo_id` at `revision` (a 40-character commit id) into `folder`."""
    if not COMMIT.match(revision):
        raise InvalidRequest(
            "revision", revision, f"pin a commit id (40 hex characters), not {revision!r}: branches move"
        )
    from huggingface_hub import snapshot_download

    folder.mkdir(parents=True, exist_ok=True)
    return Path(snapshot_download(repo_id, revision=revision, local_dir=folder))
