"""The studio app in tests: settings for quick songs, users with API keys, waiting for jobs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from infra.accounts import create_api_key, create_user
from infra.settings import Settings


def quick_settings(data_dir: Path, url: str | None = None, **overrides: Any) -> Settings:
    """No watermark or signing: these tests are about the service, not the finishing chain."""
    fields: dict[str, Any] = {
        "data_dir": data_dir,
        "environment": "test",
        "database_url": url,
        "watermark": "none",
        "sign": False,
    }
    return Settings(**{**fields, **overrides})


def add_user(client: TestClient, email: str, monthly_credits: int | None = 500) -> dict[str, str]:
    """A user and the Authorization header of a fresh API key of theirs."""
    with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        user = create_user(session, email, "correct horse battery", monthly_credits=monthly_credits)
        _, key = create_api_key(session, user.id, "tests")
        session.commit()
    return {"Authorization": f"Bearer {key}"}


def wait_job(
    client: TestClient, job_id: str, headers: dict[str, str] | None = None, timeout_s: float = 180
) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}", headers=headers or {}).json()
        if job["status"] in ("complete", "error"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


QUICK_SONG = {"prompt": "folk song about the sea", "duration_s": 10, "variations": 1, "seed": 3}
