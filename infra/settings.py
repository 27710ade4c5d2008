"""One settings object for the whole studio, read from REFRAIN_* environment variables or .env."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REFRAIN_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Field(default=Path("data"), description="SQLite library and song files live here")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; SQLite under data_dir if unset"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    default_engine: str = "sketch"
    device: str = "auto"
    soundfont: str | None = Field(default=None, description="General MIDI .sf2 for the sketch engine")
    ffmpeg: str = "ffmpeg"
    target_lufs: float = -14.0
    true_peak_dbtp: float = -1.0
    worker_threads: int = 1

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'refrain.db').resolve()}"

    @property
    def songs_dir(self) -> Path:
        return self.data_dir / "songs"


@lru_cache
def get_settings() -> Settings:
    return Settings()
