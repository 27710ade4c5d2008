"""One settings object for the whole studio, read from REFRAIN_* environment variables or .env."""

from __future__ import annotations

import os
import secrets
import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from functions.errors import RefrainError
from functions.gen.lyricist import Lyricist
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
    access_log: bool = Field(default=True, description="uvicorn's line per request")
    gil_switch_interval_s: float = Field(default=0.001, gt=0, description="sys.setswitchinterval for the API")
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
    c2pa_key_pem: str | None = Field(default=None, description="the key itself (from a secret store)")
    c2pa_chain_pem: str | None = Field(default=None, description="the chain itself (from a secret store)")
    share_prompt: bool = Field(default=True, description="False: credentials record only the prompt's hash")
    watermark: Literal["perth", "audioseal", "none"] = "perth"
    audioseal_generator: Path | None = Field(default=None, description="AudioSeal generator checkpoint")
    audioseal_detector: Path | None = Field(default=None, description="AudioSeal detector checkpoint")

    # the orchestrator
    runner: Literal["inline", "worker", "modal"] = Field(
        default="inline",
        description="inline: in-process pool; worker: PostgreSQL queue; modal: GPU functions",
    )
    max_attempts: int = Field(default=3, ge=1, description="tries per job before it ends as error (refunded)")
    worker_heartbeat_s: float = Field(default=10.0, gt=0, description="worker heartbeat interval")
    worker_tiers: list[Literal["free", "paid"]] = Field(
        default=["free", "paid"], description="whose jobs refrain-worker takes (a free-tier Mac: free)"
    )
    stalled_after_s: float = Field(
        default=60.0, gt=0, description="a job whose worker is silent this long is retried"
    )
    modal_app: str = "refrain"
    storage: Literal["local", "s3"] = "local"
    s3_bucket: str = ""
    s3_endpoint_url: str | None = Field(
        default=None, description="R2: https://<account>.r2.cloudflarestorage.com"
    )
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    url_ttl_s: int = Field(default=3600, ge=60, description="lifetime of presigned file URLs")
    # accounts and limits
    auth: Literal["local", "accounts"] = Field(
        default="local", description="local: one user, no login; accounts: API keys and browser sessions"
    )
    open_signup: bool = Field(default=False, description="accounts mode: anyone may create an account")
    credits_per_clip: int = Field(default=5, ge=0, description="a song's price in credits (stems: one song)")
    # plans (infra/credits.py) and Stripe billing (infra/billing.py)
    free_daily_credits: int = Field(
        default=50, ge=0, description="the free plan's allowance, reset 00:00 UTC"
    )
    free_engines: list[str] = Field(default=["sketch"], description="engines the free plan may use")
    paid_monthly_credits: int = Field(
        default=10_000, ge=0, description="the paid plan's monthly safety cap (songs are billed per use)"
    )
    paid_runner: Literal["inline", "worker", "modal"] | None = Field(
        default=None, description="where paid jobs run (modal in production); unset: the same as runner"
    )
    public_url: str | None = Field(
        default=None, description="the studio's address, for Stripe's return links"
    )
    stripe_secret_key: str | None = Field(default=None, description="enables billing (accounts mode)")
    stripe_webhook_secret: str | None = Field(default=None, description="whsec_…, verifies webhook events")
    stripe_webhook_tolerance_s: int = Field(default=300, ge=1, description="oldest signature accepted")
    stripe_network_retries: int = Field(default=2, ge=0)
    stripe_meter_event: str = Field(default="refrain_song", description="the Billing Meter's event name")
    stripe_price_lookup_key: str = Field(default="refrain_song_metered", description="the paid plan's price")
    stripe_product_id: str = "refrain_songs"
    stripe_currency: str = "usd"
    stripe_price_per_song: str = Field(
        default="4", description="in the currency's minor unit (cents), decimals allowed; see docs/pricing.md"
    )
    stripe_included_songs: int = Field(default=0, ge=0, description="songs a month included in the plan")
    meter_flush_s: float = Field(default=30.0, gt=0, description="how often unsent usage is retried")
    session_days: int = 30
    auth_cache_s: float = Field(
        default=5.0, ge=0, description="how long a process remembers whose key is whose"
    )
    secret_key: str | None = Field(default=None, description="signs file URLs; made under data_dir if unset")
    redis_url: str | None = Field(default=None, description="shared rate-limit store; in-memory if unset")
    rate_limit: str = Field(default="600/minute", description="requests per principal (limits' notation)")
    submit_rate_limit: str = Field(default="30/minute", description="song submissions per principal")
    max_running_jobs: int = Field(default=4, ge=1, description="unfinished jobs a user may have at once")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="largest request body accepted")
    wait_audio_s: float = Field(
        default=100.0, ge=0, description="longest a Suno-style wait_audio call blocks"
    )

    acestep_weights: Path | None = Field(
        default=None,
        description="ACE-Step 1.5 diffusers checkpoint folder; the acestep engine exists only with it",
    )
    acestep_variant: str | None = Field(default=None, description="xl-turbo, xl-sft, turbo, sft or base")
    modal_engines: list[str] = Field(
        default=["acestep"],
        description="engines the Modal GPU class runs (offered when REFRAIN_PAID_RUNNER=modal)",
    )
    acestep_planner: Path | None = Field(
        default=None, description="the 5 Hz LM planner's folder (thinking mode)"
    )
    lora_dir: Path | None = Field(
        default=None, description="LoRAs (PEFT folders) the acestep engine may load"
    )
    lyricists: list[Literal["http", "mlx", "transformers", "template"]] = Field(
        default=["template"], description="who writes lyrics, in order; the template lyricist always closes"
    )
    lyrics_llm_url: str | None = Field(default=None, description="OpenAI-compatible base URL (…/v1)")
    lyrics_llm_model: str = Field(default="qwen3", description="the model name that endpoint knows")
    lyrics_llm_key: str | None = None
    lyrics_llm_path: Path | None = Field(
        default=None, description="a local model folder (mlx / transformers)"
    )
    stem_model_dir: Path | None = Field(default=None, description="folder holding the demucs model (NAME.th)")
    stem_model: str = "htdemucs"

    def engine_options(self) -> dict[str, str | None]:
        """What `functions.gen.get_engine` needs beyond a name and a device (hashable values)."""
        return {
            "soundfont": self.soundfont,
            "weights": str(self.acestep_weights) if self.acestep_weights else None,
            "variant": self.acestep_variant,
            "planner": str(self.acestep_planner) if self.acestep_planner else None,
            "lora_dir": str(self.lora_dir) if self.lora_dir else None,
        }

    def local_engines(self) -> list[str]:
        """The engines this process can load (ACE-Step only where its weights are)."""
        from functions.gen.registry import available_engines

        return available_engines(self.acestep_weights)

    def engines(self) -> list[str]:
        """The engines this studio offers: its own, and the Modal GPU class's for the paid tier."""
        remote = self.modal_engines if self.paid_runner == "modal" else []
        return sorted({*self.local_engines(), *remote})

    def make_lyricist(self, device: str = "cpu") -> Lyricist:
        """The configured lyricists as one chain ending with the template lyricist."""
        from functions.gen.lyrics_llm import HttpChatBackend, LlmLyricist, LocalModelBackend, LyricistChain

        chain: list[Lyricist] = []
        for name in self.lyricists:
            if name == "http" and self.lyrics_llm_url:
                chain.append(
                    LlmLyricist(
                        HttpChatBackend(self.lyrics_llm_url, self.lyrics_llm_model, self.lyrics_llm_key)
                    )
                )
            elif name in ("mlx", "transformers") and self.lyrics_llm_path:
                chain.append(LlmLyricist(LocalModelBackend(str(self.lyrics_llm_path), device, name)))
        return LyricistChain(chain)

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
        if self.c2pa_key_pem and self.c2pa_chain_pem:  # Modal secrets arrive as environment variables
            return SigningMaterial(self.c2pa_key_pem.encode(), self.c2pa_chain_pem.encode())
        if self.c2pa_key_file and self.c2pa_chain_file:
            return SigningMaterial(self.c2pa_key_file.read_bytes(), self.c2pa_chain_file.read_bytes())
        if self.environment == "production":
            raise RefrainError("REFRAIN_C2PA_KEY_FILE and REFRAIN_C2PA_CHAIN_FILE must be set in production")
        return dev_signing_material(self.data_dir / "c2pa")

    def url_secret(self) -> bytes:
        """The key that signs file URLs: configured, or (outside production) made once and kept."""
        if self.secret_key:
            return self.secret_key.encode()
        if self.environment == "production":
            raise RefrainError("REFRAIN_SECRET_KEY must be set in production")
        path = self.data_dir / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first
                pass
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_hex(32))
        return path.read_text().strip().encode()

    @property
    def billing_enabled(self) -> bool:
        return self.auth == "accounts" and bool(self.stripe_secret_key)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'refrain.db').resolve()}"

    @property
    def songs_dir(self) -> Path:
        return self.data_dir / "songs"


@lru_cache
def get_settings() -> Settings:
    return Settings()
