"""One settings object for the whole studio, read from REFRAIN_* environment variables or .env."""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from functions.errors import RefrainError
from functions.post.credentials import SigningMaterial, dev_signing_material
from functions.post.stems import Separator, get_separator
from functions.post.watermark import Backend, get_backend


def _default_data_dir() -> Path:
    """Per-user, so the CLI never scatters files into whatever folder it runs in."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Refrain"
    return Path.home() / ".local" / "share" / "refrain"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REFRAIN_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Field(
        default_factory=_default_data_dir, description="library, song files, dev signing keys"
    )
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
    sign: bool = Field(
        default=True, description="C2PA-sign every file (a dev chain is made if no key is set)"
    )
    c2pa_key_file: Path | None = Field(default=None, description="production signing key (PEM)")
    c2pa_chain_file: Path | None = Field(default=None, description="its certificate chain, leaf first (PEM)")
    share_prompt: bool = Field(default=True, description="False: credentials record only the prompt's hash")
    watermark: Literal["perth", "audioseal", "none"] = "perth"
    audioseal_generator: Path | None = Field(default=None, description="AudioSeal generator checkpoint")
    audioseal_detector: Path | None = Field(default=None, description="AudioSeal detector checkpoint")

    stem_model_dir: Path | None = Field(default=None, description="folder holding the demucs model (NAME.th)")
    stem_model: str = "htdemucs"

    def separator(self, device: str = "cpu") -> Separator | None:
        if self.stem_model_dir is None:
            return None
        return get_separator(self.stem_model, self.stem_model_dir, device)

    def watermark_backend(self, device: str = "cpu") -> Backend | None:
        if self.watermark == "none":
            return None
        return get_backend(self.watermark, device, self.audioseal_generator, self.audioseal_detector)

    def signing_material(self) -> SigningMaterial | None:
        """The configured key and chain; in development a local dev chain; never a dev chain in production."""
        if not self.sign:
            return None
        if self.c2pa_key_file and self.c2pa_chain_file:
            return SigningMaterial(self.c2pa_key_file.read_bytes(), self.c2pa_chain_file.read_bytes())
        if self.environment == "production":
            raise RefrainError("REFRAIN_C2PA_KEY_FILE and REFRAIN_C2PA_CHAIN_FILE must be set in production")
        return dev_signing_material(self.data_dir / "c2pa")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'refrain.db').resolve()}"

    @property
    def songs_dir(self) -> Path:
        return self.data_dir / "songs"


@lru_cache
def get_settings() -> Settings:
    return Settings()
