"""Refrain's paid tier on Modal, in deploy order: images, the weights volume, secrets, the GPU engine
class, the web endpoint, the weight loader and `modal run`'s entrypoint. Thin wrappers only: every
body is a one-line call into plain Python (`local/paid.py`, `web/main.py`), which also runs locally.

    modal deploy modal_app.py                                   # see docs/operations.md
    modal run modal_app.py --prompt "rainy-day synth-pop, female vocals" --out songs/

This module imports with only `modal` installed and no token: heavy imports live inside the bodies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import modal

MINUTES = 60
APP_NAME = "refrain"  # REFRAIN_MODAL_APP: the API's ModalDispatcher looks the class up by it
WEIGHTS_DIR = "/weights"  # ACE-Step checkpoints, the 5 Hz LM, LoRAs, the stem model
PYTHON = "3.11"
SYSTEM_PACKAGES = ("ffmpeg", "fluidsynth", "fluid-soundfont-gm", "espeak-ng", "libsndfile1")
SOURCES = ("functions", "infra", "local", "web")

app = modal.App(APP_NAME)

# 1. images. Both install the project's own pins from pyproject.toml (torch 2.9.1: PyPI's Linux wheel
#    is the CUDA 12.8 build, so the GPU image needs only the CUDA runtime libraries of the base).
gpu_image = (
    modal.Image.from_registry("nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04", add_python=PYTHON)
    .apt_install(*SYSTEM_PACKAGES)
    .pip_install_from_pyproject("pyproject.toml")
    .env(
        {
            "HF_HUB_OFFLINE": "1",  # weights come from the volume, never from the hub at generate time
            "REFRAIN_DEVICE": "cuda",
            "REFRAIN_DEFAULT_ENGINE": "acestep",
            "REFRAIN_ACESTEP_WEIGHTS": f"{WEIGHTS_DIR}/acestep-v15-xl-turbo-diffusers",
            "REFRAIN_ACESTEP_VARIANT": "xl-turbo",
            "REFRAIN_LORA_DIR": f"{WEIGHTS_DIR}/loras",
            "REFRAIN_STEM_MODEL_DIR": f"{WEIGHTS_DIR}/demucs",
            "REFRAIN_ENVIRONMENT": "production",
        }
    )
    .add_local_python_source(*SOURCES)
)
# the web endpoint: no GPU base, the same pins (it runs the API, the sketch engine and no model)
web_image = (
    modal.Image.debian_slim(python_version=PYTHON)
    .apt_install(*SYSTEM_PACKAGES)
    .pip_install_from_pyproject("pyproject.toml")
    .env({"REFRAIN_ENVIRONMENT": "production", "REFRAIN_PAID_RUNNER": "modal", "REFRAIN_MODAL_APP": APP_NAME})
    .add_local_python_source(*SOURCES)
)

# 2. the weights volume and the secrets (created once: see docs/operations.md)
weights = modal.Volume.from_name("refrain-weights", create_if_missing=True)
SECRETS = [
    modal.Secret.from_name("refrain-database"),  # REFRAIN_DATABASE_URL (PostgreSQL), REFRAIN_REDIS_URL
    modal.Secret.from_name("refrain-r2"),  # REFRAIN_STORAGE=s3, REFRAIN_S3_BUCKET / _ENDPOINT_URL / keys
    modal.Secret.from_name("refrain-c2pa"),  # REFRAIN_C2PA_KEY_PEM, REFRAIN_C2PA_CHAIN_PEM
    modal.Secret.from_name("refrain-app"),  # REFRAIN_SECRET_KEY, REFRAIN_AUTH=accounts, …
]
BILLING = modal.Secret.from_name("refrain-stripe")  # REFRAIN_STRIPE_SECRET_KEY, _WEBHOOK_SECRET

# 3. the finishing chain on CPUs: watermark, mastering, five encodings, HLS, signing. It takes ~2.5
#    CPU-seconds for a 60 s song (docs/benchmarks.md), which inside the GPU container would cost as
#    much as the generation itself (docs/pricing.md).
FINISH_OPTIONS: dict[str, Any] = {
    "image": web_image,
    "secrets": SECRETS,  # the C2PA key signs here
    "cpu": 4.0,  # the encoders run in parallel: 4 cores finish a song in about a second
    "memory": 4096,  # a 240 s song's float arrays and encoders with room to spare (MiB)
    "timeout": 5 * MINUTES,
    "retries": modal.Retries(max_retries=2, initial_delay=1.0),  # idempotent: same input, same files
    "max_containers": 32,  # CPUs are cheap; never the bottleneck behind 8 GPUs
}


@app.function(**FINISH_OPTIONS)
def finish(payload: dict[str, Any]) -> dict[str, Any]:
    from local.paid import finish_remotely

    return finish_remotely(payload)


# 4. the GPU engine class. Options chosen on purpose (and checked by tests/test_modal_app.py):
ENGINE_OPTIONS: dict[str, Any] = {
    "gpu": "A100-80GB",  # XL turbo in bf16 + VAE + planner fit with room for batch 4
    "image": gpu_image,
    "volumes": {WEIGHTS_DIR: weights},
    "secrets": SECRETS,
    # a 240 s song with stems stays well inside this; a stuck container is cut off and retried
    "timeout": 10 * MINUTES,
    # a crashed container is retried; the job's claim makes a retry safe (infra/jobs.py), and the job
    # service itself gives up after REFRAIN_MAX_ATTEMPTS with the credits back
    "retries": modal.Retries(max_retries=2, initial_delay=2.0, backoff_coefficient=2.0),
    # loading the XL weights takes tens of seconds: keep a warm container through a session's pauses
    "scaledown_window": 15 * MINUTES,
    "max_containers": 8,  # the bill's ceiling; queued calls wait rather than scale past it
}


@app.cls(**ENGINE_OPTIONS)
@modal.concurrent(max_inputs=1)  # one batch at a time owns the GPU; variations are batched inside it
class Engine:
    @modal.enter()
    def load(self) -> None:
        from infra.settings import Settings
        from local.paid import PaidWorker, RemoteFinisher

        self.worker = PaidWorker(Settings(), "cuda" if _has_cuda() else "cpu")
        # the GPU only generates; run here (tests, `.local()`), the same body finishes in-process
        self.worker.jobs.finisher = RemoteFinisher(finish.local if modal.is_local() else finish.remote)

    @modal.method()
    def run_job(self, job_id: str) -> str:
        return self.worker.run_job(job_id)

    @modal.method()
    def generate(self, fields: dict[str, Any], formats: tuple[str, ...] = ("m4a",)) -> dict[str, bytes]:
        return self.worker.generate(fields, formats)


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# 5. the web endpoint: the FastAPI studio, stateless behind PostgreSQL and R2
WEB_OPTIONS: dict[str, Any] = {
    "image": web_image,
    "secrets": [*SECRETS, BILLING],
    "min_containers": 1,  # the API answers at once; songs wait for GPUs, people should not
    "scaledown_window": 5 * MINUTES,
    "timeout": 5 * MINUTES,  # SSE streams end by themselves within 15 minutes and reconnect
}


@app.function(**WEB_OPTIONS)
@modal.concurrent(max_inputs=200)  # async I/O bound: one container holds many polling clients
@modal.asgi_app()
def web() -> Any:
    from web.main import create_app

    return create_app()


# 6. the weights: filled from the model hub, at a revision someone checked
@app.function(image=web_image, volumes={WEIGHTS_DIR: weights}, timeout=60 * MINUTES)
def download_weights(repo_id: str, revision: str, folder: str = "") -> str:
    from local.weights import fetch_weights

    path = fetch_weights(repo_id, revision, Path(WEIGHTS_DIR) / (folder or repo_id.split("/")[-1]))
    weights.commit()
    return str(path)


# 7. `modal run modal_app.py --prompt "..."`: a song made on the GPU, saved here
@app.local_entrypoint()
def main(
    prompt: str, out: str = "songs", duration: float = 30.0, seed: int = -1, variations: int = 1
) -> None:
    from local.paid import make_and_save

    make_and_save(Engine().generate.remote, prompt, Path(out), duration, seed, variations)
