"""The hot read path: a job and its clips in one query, awaited on the event loop.

Polling clients ask for job status many times a second. On PostgreSQL this reads with psycopg's
async pool (no worker-thread hop, and one query's wait never holds up other requests); elsewhere
(SQLite) callers use the ORM path."""

from __future__ import annotations

from typing import Any, cast

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from infra.db import Job, Song
from infra.queue import psycopg_conninfo

_JOB = ("id", "user_id", "kind", "status", "stage", "step", "total", "attempts", "error", "created_at")
# every clip column, and the model attribute each maps to ("metadata" is `song_metadata`)
_SONG = {column.name: Song.__mapper__.get_property_by_column(column).key for column in Song.__table__.columns}
QUERY = (
    "SELECT "
    + ", ".join(f"j.{c} AS j_{c}" for c in _JOB)
    + ", "
    + ", ".join(f"s.{c} AS s_{c}" for c in _SONG)
    + " FROM jobs j LEFT JOIN songs s ON s.job_id = j.id WHERE j.id = %s ORDER BY s.variation"
)


class JobReader:
    def __init__(self, database_url: str, max_size: int = 10) -> None:
        self.pool = AsyncConnectionPool(
            psycopg_conninfo(database_url),
            min_size=2,
            max_size=max_size,
            open=False,
            kwargs={"autocommit": True, "row_factory": dict_row},  # one round trip a read, no BEGIN
        )

    async def open(self) -> None:
        await self.pool.open()

    async def close(self) -> None:
        await self.pool.close()

    async def job(self, job_id: str) -> Job | None:
        """The job with its clips, as transient model objects (never attached to a session)."""
        async with self.pool.connection() as connection:
            cursor = await connection.execute(QUERY, (job_id,))
            rows = cast(list[dict[str, Any]], await cursor.fetchall())
        if not rows:
            return None
        first = rows[0]
        job = Job(**{c: first[f"j_{c}"] for c in _JOB})
        songs = []
        for row in rows:
            if row["s_id"] is None:
                continue
            songs.append(Song(**{attribute: row[f"s_{column}"] for column, attribute in _SONG.items()}))
        job.songs = songs
        return job
