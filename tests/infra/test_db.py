"""The library's schema comes from migrations, on SQLite and on PostgreSQL, and matches the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from infra.db import Base, Job, Song, make_engine, make_sessions, migrate
from tests.utils.databases import database_url


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migrations_build_the_models_schema(kind: str, tmp_path: Path) -> None:
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        migrate(engine)  # a second run is a no-op
        assert {"jobs", "songs", "alembic_version"} <= set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            # procrastinate's own tables (worker mode's queue, migration 0004) are not Refrain's models
            context = MigrationContext.configure(
                connection,
                opts={
                    "include_name": lambda name, kind, _: (
                        not (kind == "table" and name.startswith("procrastinate_"))
                    )
                },
            )
            assert compare_metadata(context, Base.metadata) == []
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_job_and_song_round_trip(kind: str, tmp_path: Path) -> None:
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        sessions = make_sessions(engine)
        with sessions() as session:
            job = Job(request={"prompt": "pop", "duration_s": 30.0})
            session.add(job)
            session.flush()
            session.add(
                Song(
                    job_id=job.id,
                    variation=0,
                    title="Pop",
                    engine="sketch",
                    seed=1,
                    duration_s=30.0,
                    files={"m4a": "songs/x/song.m4a"},
                    song_metadata={"bpm": 120},
                )
            )
            session.commit()
            job_id = job.id
        with sessions() as session:
            loaded = session.get(Job, job_id)
            assert (
                loaded is not None and loaded.request["duration_s"] == 30.0 and loaded.status == "submitted"
            )
            assert [s.song_metadata["bpm"] for s in loaded.songs] == [120]
        engine.dispose()
