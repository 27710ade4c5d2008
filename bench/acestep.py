"""Benchmark: ACE-Step 1.5 through diffusers at real size with random weights (no download is possible
here): seconds per song at 8 steps (batch 1 and 2), the split between text encoding, denoising and
VAE decoding, peak GPU memory, the denoise loop's achieved FLOP/s against the GPU's peak, and the
unmodified pipeline against ours-optimised in the same run, with the outputs compared.

    python -m bench.acestep --size 2b            # on a GPU (bf16): the 2B turbo configuration
    python -m bench.acestep --size xl --xl-config transformer/config.json   # the XL's own config
    python -m bench.acestep --size tiny          # CPU smoke run of the same code

Random weights do the same arithmetic as trained ones of that size; only the sound differs.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}  # dense


def build(size: str, xl_config: Path | None, device: str, dtype: torch.dtype) -> Any:
    from diffusers import (
        AceStepConditionEncoder,
        AceStepPipeline,
        AceStepTransformer1DModel,
        AutoencoderOobleck,
        FlowMatchEulerDiscreteScheduler,
    )
    from transformers import Qwen3Model

    from tests.utils.acestep import tiny_acestep, tiny_qwen3, tiny_tokenizer

    if size == "tiny":
        folder = Path("/tmp/refrain-bench-acestep-tiny")
        if not (folder / "model_index.json").exists():
            tiny_acestep(folder)
        return AceStepPipeline.from_pretrained(folder, dtype=dtype).to(device)
    torch.manual_seed(0)
    with torch.device(device):
        tokenizer = tiny_tokenizer()
        # Qwen3-Embedding-0.6B's shape (the text encoder ACE-Step 1.5 uses)
        text_config: Any = tiny_qwen3(151_669, layers=28)
        text_config.update({"hidden_size": 1024, "intermediate_size": 3072, "num_attention_heads": 16,
                            "num_key_value_heads": 8, "head_dim": 128})  # fmt: skip
        text_encoder = Qwen3Model(text_config)
        transformer_args: dict[str, Any] = {"is_turbo": True, "model_version": "turbo"}
        if size == "xl":
            if xl_config is None:
                raise SystemExit("--size xl needs --xl-config (the XL checkpoint's transformer/config.json)")
            config = json.loads(xl_config.read_text())
            transformer_args |= {k: v for k, v in config.items() if not k.startswith("_")}
        transformer = AceStepTransformer1DModel(**transformer_args)  # 2B: diffusers' defaults are the 2B's
        condition_encoder = AceStepConditionEncoder(
            hidden_size=transformer.config.encoder_hidden_size or transformer.config.hidden_size,
            text_hidden_dim=1024,
        )
        vae = AutoencoderOobleck(  # Oobleck at 48 kHz with ACE-Step's 1920x hop
            encoder_hidden_size=128, downsampling_ratios=[2, 4, 4, 6, 10], channel_multiples=[1, 2, 4, 8, 16],
            decoder_channels=128, decoder_input_channels=64, audio_channels=2, sampling_rate=48000,
        )  # fmt: skip
    pipe = AceStepPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer,
        condition_encoder=condition_encoder, scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1),
    )  # fmt: skip
    return pipe.to(device=device, dtype=dtype)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@contextmanager
def timed_forward(module: Any, device: str, into: list[float]) -> Any:
    """Adds each call's seconds of `module.forward` to `into`."""
    original = module.forward
    module.forward = _timed(original, device, into)
    try:
        yield
    finally:
        module.forward = original


def run(pipe: Any, device: str, batch: int, seconds: float, steps: int) -> dict[str, Any]:
    text: list[float] = []
    decode: list[float] = []
    marks: list[float] = []

    def step(_: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        sync(device)
        marks.append(time.perf_counter())
        return {}

    with timed_forward(pipe.text_encoder, device, text):
        original_decode = pipe.vae.decode
        pipe.vae.decode = _timed(original_decode, device, decode)
        try:
            sync(device)
            start = time.perf_counter()
            out = pipe(
                prompt=["upbeat synth-pop, female vocals"] * batch,
                lyrics=["[verse]\nWalking through the city lights\n[chorus]\nOh summer rain"] * batch,
                audio_duration=seconds, num_inference_steps=steps, guidance_scale=1.0, shift=3.0,
                generator=[torch.Generator("cpu").manual_seed(i) for i in range(batch)],
                callback_on_step_end=step, output_type="pt",
            )  # fmt: skip
            sync(device)
            total = time.perf_counter() - start
        finally:
            pipe.vae.decode = original_decode
    denoise = marks[-1] - marks[0] if len(marks) > 1 else 0.0
    denoise *= steps / max(len(marks) - 1, 1)  # the first mark ends step 1: scale to all steps
    return {"total_s": total, "text_s": sum(text), "denoise_s": denoise, "decode_s": sum(decode),
            "audio": out.audios.float().cpu()}  # fmt: skip


def _timed(function: Callable[..., Any], device: str, into: list[float]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        sync(device)
        start = time.perf_counter()
        out = function(*args, **kwargs)
        sync(device)
        into.append(time.perf_counter() - start)
        return out

    return wrapped


def dit_flops(pipe: Any, seconds: float) -> float:
    """FLOPs of one transformer call for one song, counted by torch on the call the pipeline makes."""
    from torch.utils.flop_counter import FlopCounterMode

    captured: dict[str, Any] = {}

    def keep(_: Any, args: Any, kwargs: dict[str, Any]) -> None:
        captured.setdefault("kwargs", kwargs)

    handle = pipe.transformer.register_forward_pre_hook(keep, with_kwargs=True)
    try:
        pipe(prompt=["pop"], lyrics=["la"], audio_duration=seconds, num_inference_steps=1, guidance_scale=1.0)
    finally:
        handle.remove()
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        pipe.transformer(**captured["kwargs"])
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", choices=["tiny", "2b", "xl"], default="2b")
    parser.add_argument("--xl-config", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"device: {name}, {dtype}, size {args.size}, {args.seconds:g} s song, {args.steps} steps")
    pipe = build(args.size, args.xl_config, device, dtype)
    pipe.set_progress_bar_config(disable=True)
    params = sum(p.numel() for p in pipe.transformer.parameters()) / 1e9
    print(f"DiT parameters: {params:.2f} B")

    def measure(label: str, batch: int) -> dict[str, Any]:
        run(pipe, device, batch, args.seconds, args.steps)  # warm-up (and compilation)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        runs = [run(pipe, device, batch, args.seconds, args.steps) for _ in range(args.repeats)]
        best = min(runs, key=lambda r: r["total_s"])
        peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
        split = f"text {best['text_s']:.3f}, denoise {best['denoise_s']:.3f}, decode {best['decode_s']:.3f}"
        each = best["total_s"] / batch
        line = f"{label} batch {batch}: {best['total_s']:.3f} s ({each:.3f} s a song)"
        print(f"{line}; {split}; peak {peak:.1f} GiB")
        return best

    base = {b: measure("unmodified", b) for b in (1, 2)}
    flops = dit_flops(pipe, args.seconds) * args.steps
    achieved = flops / base[1]["denoise_s"] / 1e12 if base[1]["denoise_s"] else float("nan")
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), float("nan"))
    share = achieved / peak
    print(f"denoise: {flops / 1e12:.2f} TFLOP a song, {achieved:.1f} TFLOP/s = {share:.1%} of {peak:g}")
    if device == "cuda":  # ours: the transformer compiled (SDPA is diffusers' default attention already)
        pipe.transformer = torch.compile(pipe.transformer, mode="max-autotune-no-cudagraphs", dynamic=False)
        fast = {b: measure("compiled", b) for b in (1, 2)}
        for b in (1, 2):
            diff = float((fast[b]["audio"] - base[b]["audio"]).abs().max())
            speedup = base[b]["total_s"] / fast[b]["total_s"]
            print(
                f"batch {b}: compiled / unmodified = {speedup:.2f}x faster, max output difference {diff:.2e}"
            )
    else:
        print("compiled variant: CUDA only (skipped)")
    ratio = base[1]["total_s"] * 2 / base[2]["total_s"]
    print(f"two variations as one batch vs two single runs: {ratio:.2f}x faster")


if __name__ == "__main__":
    main()
