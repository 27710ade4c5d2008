"""The ACE-Step 1.5 engine on diffusers' `AceStepPipeline`: load once from a local weights folder,
generate many; editing tasks (extend, replace a section, cover, add / extract a track) and LoRAs.

What the pipeline does not do, this engine does (see docs/engineering.md, "ACE-Step"):
- repaint and extend regenerate the whole clip and only condition on the source, and every output is
  peak-normalised to -1 dBFS: the source is spliced back outside the edited window, gain-matched;
- the VAE samples the source's latents from torch's global generator: it is seeded per request, so
  editing is as reproducible as text2music;
- `_interrupt` still decodes and returns half-denoised audio: a cancelled request raises instead.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from functions.errors import InvalidRequest, RefrainError
from functions.gen.acestep.lora import LoraLibrary
from functions.gen.acestep.variants import DEFAULT_VARIANT, TRACK_TASKS, VARIANTS, Variant
from functions.gen.engine import RenderedSong
from functions.progress import ProgressFn, no_progress
from functions.request import SongRequest, parse_key

SAMPLE_RATE_HZ = 48_000
VAE_HOP = 1920  # samples per latent frame (25 a second)
MIN_DURATION_S, MAX_DURATION_S = 10.0, 600.0  # what ACE-Step 1.5 was trained for
SPLICE_FADE_S = 0.05  # crossfade where generated audio meets the kept source
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


class Cancelled(RefrainError):
    """The request was cancelled while denoising; its half-made audio is thrown away."""


def dtype_for(device: str) -> Any:
    """CUDA: bf16 (the weights' own precision, half the memory). MPS and CPU: fp32 — MPS has no
    reliable bf16 on every macOS/chip and the Oobleck VAE's fp16 activations overflow; correctness
    first (to be revisited with a measurement on an M-series Mac)."""
    import torch

    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def weights_kind(weights: Path) -> str:
    """turbo | sft | base, from the transformer's config, or a clear error for a folder that is not
    an ACE-Step 1.5 diffusers checkpoint."""
    if not weights.is_dir():
        raise InvalidRequest("weights", str(weights), f"ACE-Step weights folder {weights} does not exist")
    index = weights / "model_index.json"
    config = weights / "transformer" / "config.json"
    if not index.is_file() or not config.is_file():
        raise InvalidRequest(
            "weights",
            str(weights),
            f"{weights} is not an ACE-Step diffusers checkpoint (no model_index.json)",
        )
    if json.loads(index.read_text()).get("_class_name") != "AceStepPipeline":
        raise InvalidRequest(
            "weights", str(weights), f"{weights} holds another pipeline, not AceStepPipeline"
        )
    settings = json.loads(config.read_text())
    if settings.get("is_turbo") or settings.get("model_version") == "turbo":
        return "turbo"
    return "base" if settings.get("model_version") == "base" else "sft"


def has_weights(weights: Path | None) -> bool:
    try:
        return weights is not None and bool(weights_kind(weights))
    except InvalidRequest:
        return False


def pick_variant(weights: Path, name: str | None) -> Variant:
    kind = weights_kind(weights)
    if name is None:  # the folder decides: the 2B name of its kind
        return VARIANTS[kind] if kind in VARIANTS else VARIANTS[DEFAULT_VARIANT]
    if name not in VARIANTS:
        raise InvalidRequest(
            "variant", name, f"unknown ACE-Step variant {name!r}; known: {', '.join(VARIANTS)}"
        )
    variant = VARIANTS[name]
    if variant.kind != kind:
        raise InvalidRequest(
            "variant",
            name,
            f"variant {name} needs {variant.kind} weights, but {weights} holds a {kind} model",
        )
    return variant


def caption(request: SongRequest) -> str:
    """The text the DiT is conditioned on: the description, then the (normalised) style tags."""
    parts = [request.prompt.strip().rstrip(".")] if request.prompt.strip() else []
    if request.style_tags:
        parts.append(", ".join(request.style_tags))
    if request.instrumental:
        parts.append("instrumental")
    return ". ".join(parts) or "music"


def keyscale(key: str | None) -> str | None:
    if key is None:
        return None
    pitch_class, mode = parse_key(key)
    return f"{KEY_NAMES[pitch_class]} {mode}"


class AceStepEngine:
    name = "acestep"
    renders_stems = False
    sample_rate_hz = SAMPLE_RATE_HZ

    def __init__(
        self,
        weights: Path | str,
        variant: str | None = None,
        lora_dir: Path | str | None = None,
        planner_weights: Path | str | None = None,
        planner: Any = None,
    ) -> None:
        self.weights = Path(weights).expanduser()
        self.variant = pick_variant(self.weights, variant)
        self.model_version = f"ACE-Step 1.5 {self.variant.name}"
        self.lora_dir = Path(lora_dir).expanduser() if lora_dir else None
        self.planner = planner  # a functions.gen.acestep.planner.Planner, or None
        self.planner_weights = Path(planner_weights).expanduser() if planner_weights else None
        self.pipe: Any = None
        self.device = "cpu"
        self.loras: LoraLibrary | None = None
        self._lock = threading.Lock()  # one pipeline: one request at a time (adapters are state)
        self._cancel = threading.Event()

    # --- loading --------------------------------------------------------------------------

    def load(self, device: str = "cpu") -> None:
        """Load every component once, from the local folder only (never the network)."""
        import diffusers
        import transformers
        from diffusers import AceStepPipeline

        diffusers.utils.logging.disable_progress_bar()  # progress is ours to report
        transformers.utils.logging.disable_progress_bar()
        self.device = device
        self.pipe = AceStepPipeline.from_pretrained(
            self.weights, dtype=dtype_for(device), local_files_only=True
        ).to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.loras = LoraLibrary(self.pipe, self.lora_dir)
        if self.planner is None and self.planner_weights is not None:
            from functions.gen.acestep.planner import load_planner

            self.planner = load_planner(self.planner_weights, device)

    # --- checks ---------------------------------------------------------------------------

    def check(self, request: SongRequest, task: str = "text2music") -> None:
        if task not in self.variant.tasks:
            allowed = ", ".join(self.variant.tasks)
            raise InvalidRequest(
                "task", task, f"the {self.variant.name} variant cannot {task}; it can: {allowed}"
                + (" (adding or extracting tracks needs the base model)" if task in TRACK_TASKS else "")
            )  # fmt: skip
        # the request's duration sets the length only where no source does
        if task in ("text2music", "extend") and not MIN_DURATION_S <= request.duration_s <= MAX_DURATION_S:
            raise InvalidRequest(
                "duration_s", request.duration_s,
                f"ACE-Step makes {MIN_DURATION_S:g}–{MAX_DURATION_S:g} s, not {request.duration_s:g} s",
            )  # fmt: skip
        if request.lora is not None:
            assert self.loras is not None, "load() first"
            self.loras.check(request.lora)

    def cancel(self) -> None:
        """Stop the request being denoised at its next step (it raises Cancelled)."""
        self._cancel.set()

    # --- generation -----------------------------------------------------------------------

    def generate(self, request: SongRequest, *, on_progress: ProgressFn = no_progress) -> list[RenderedSong]:
        """`request.variations` songs in one batch, seeds `seed`, `seed + 1`, …"""
        self.check(request)
        audios, extra = self._run(request, "text2music", request.variations, request.duration_s, on_progress)
        return [self._song(request, audio, request.seed + i, extra) for i, audio in enumerate(audios)]

    def extend(
        self,
        request: SongRequest,
        source: np.ndarray,
        continue_at_s: float,
        *,
        on_progress: ProgressFn = no_progress,
    ) -> RenderedSong:
        """The source up to `continue_at_s`, then `request.duration_s` of new music that continues it:
        a repaint over a window reaching past the source's end (the source is padded with silence)."""
        self.check(request, "extend")
        full = _stereo(source)
        if not 0 < continue_at_s <= full.shape[1] / SAMPLE_RATE_HZ:
            raise InvalidRequest(
                "continue_at",
                continue_at_s,
                f"continue_at must lie within the song (0–{full.shape[1] / SAMPLE_RATE_HZ:.1f} s)",
            )
        kept = round(continue_at_s * SAMPLE_RATE_HZ)
        wanted = kept + round(request.duration_s * SAMPLE_RATE_HZ)
        start = kept / SAMPLE_RATE_HZ
        audio, extra = self._edit(
            request, "repaint", full[:, :kept], on_progress, length=wanted,
            repainting_start=start, repainting_end=-1,
        )  # fmt: skip
        spliced = splice(audio, full, [(0, kept)])  # fades from the source's own next moments
        return self._song(request, spliced, request.seed, {**extra, "continue_at_s": round(start, 3)})

    def repaint(
        self,
        request: SongRequest,
        source: np.ndarray,
        start_s: float,
        end_s: float,
        *,
        on_progress: ProgressFn = no_progress,
    ) -> RenderedSong:
        """The source with `start_s`–`end_s` made anew from the request (replace a section)."""
        self.check(request, "repaint")
        src = _stereo(source)
        length_s = src.shape[1] / SAMPLE_RATE_HZ
        if not 0 <= start_s < end_s <= length_s:
            raise InvalidRequest(
                "section", f"{start_s}-{end_s}", f"the section must lie within the song (0–{length_s:.1f} s)"
            )
        audio, extra = self._edit(
            request, "repaint", src, on_progress, repainting_start=start_s, repainting_end=end_s
        )
        a, b = round(start_s * SAMPLE_RATE_HZ), round(end_s * SAMPLE_RATE_HZ)
        kept = splice(audio, src, [(0, a), (b, src.shape[1])])
        return self._song(request, kept, request.seed, {**extra, "section_s": [start_s, end_s]})

    def cover(
        self,
        request: SongRequest,
        source: np.ndarray,
        reference: np.ndarray | None = None,
        strength: float = 1.0,
        *,
        on_progress: ProgressFn = no_progress,
    ) -> RenderedSong:
        """The source's music remade in the request's style; `reference` lends its timbre."""
        if not 0.0 <= strength <= 1.0:
            raise InvalidRequest("strength", strength, "cover strength must be 0–1")
        self.check(request, "cover")
        options: dict[str, Any] = {"audio_cover_strength": strength}
        if reference is not None:
            options["reference_audio"] = _stereo(reference)
        audio, extra = self._edit(request, "cover", _stereo(source), on_progress, **options)
        return self._song(request, audio, request.seed, {**extra, "cover_strength": strength})

    def track(
        self,
        request: SongRequest,
        source: np.ndarray,
        task: str,
        track_name: str,
        *,
        on_progress: ProgressFn = no_progress,
    ) -> RenderedSong:
        """Add (`lego`) or extract a track such as "vocals" or "drums" (base variants only)."""
        if task not in ("lego", "extract"):
            raise InvalidRequest("task", task, "a track task is 'lego' (add) or 'extract'")
        self.check(request, task)
        audio, extra = self._edit(request, task, _stereo(source), on_progress, track_name=track_name)
        return self._song(request, audio, request.seed, {**extra, "track": track_name})

    def _edit(
        self,
        request: SongRequest,
        task: str,
        source: np.ndarray,
        on_progress: ProgressFn,
        length: int | None = None,
        **options: Any,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """One clip made from `source` [2, samples] (padded with silence to `length` samples), cut
        back to that length: the pipeline works in whole VAE frames and drops a partial last one."""
        length = length or source.shape[1]
        padded = _whole_frames(source, length)
        [audio], extra = self._run(
            request, task, 1, length / SAMPLE_RATE_HZ, on_progress, src_audio=padded, **options
        )
        return audio[:, :length], extra

    # --- the one place the pipeline is called ---------------------------------------------

    def _run(
        self,
        request: SongRequest,
        task: str,
        batch: int,
        duration_s: float,
        on_progress: ProgressFn,
        **options: Any,
    ) -> tuple[list[np.ndarray], dict[str, Any]]:
        import torch

        assert self.pipe is not None and self.loras is not None, "load() first"
        variant = self.variant
        steps = variant.steps
        lyrics = "[Instrumental]" if request.instrumental or not request.lyrics.strip() else request.lyrics
        text = caption(request)
        plan: dict[str, Any] = {}
        thinking = variant.thinking if request.thinking is None else request.thinking
        rejected = None
        if thinking and task == "text2music":
            if self.planner is None:
                raise InvalidRequest(
                    "thinking", True, "thinking mode needs the 5 Hz LM planner (REFRAIN_ACESTEP_PLANNER)"
                )
            from functions.gen.acestep.planner import PlanRejected

            on_progress("planning", 0, 1)
            try:
                planned = self.planner.plan(
                    text, lyrics, duration_s, request.seed, bpm=request.bpm, key=keyscale(request.key),
                    timesignature=request.time_signature, language=request.language,
                )  # fmt: skip
            except PlanRejected as exc:  # nothing malformed reaches the DiT: it goes on without a plan
                rejected = str(exc)
            else:
                plan = planned.as_metadata()
                options["audio_codes"] = [planned.codes_text()] * batch
                text = planned.caption or text
            on_progress("planning", 1, 1)
        bpm = request.bpm or plan.get("bpm")
        key = keyscale(request.key) or plan.get("keyscale")
        self._cancel.clear()

        def step_done(pipe: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            on_progress("denoising", index + 1, steps)  # may raise: the job was cancelled elsewhere
            if self._cancel.is_set():
                pipe._interrupt = True
            return {}

        with self._lock:
            active = self.loras.activate(request.lora, request.lora_scale)
            torch.manual_seed(request.seed)  # the VAE samples source latents from the global generator
            on_progress("denoising", 0, steps)
            with torch.inference_mode():
                result = self.pipe(
                    prompt=[text] * batch,
                    lyrics=[lyrics] * batch,
                    vocal_language=[request.language] * batch,
                    audio_duration=duration_s,
                    num_inference_steps=steps,
                    guidance_scale=variant.guidance,
                    shift=variant.shift,
                    generator=[torch.Generator("cpu").manual_seed(request.seed + i) for i in range(batch)],
                    bpm=round(bpm) if bpm else None,
                    keyscale=key,
                    timesignature=(request.time_signature or "4/4").split("/")[0],
                    task_type=task,
                    callback_on_step_end=step_done,
                    output_type="np",
                    **{k: _tensor(v) for k, v in options.items()},
                )
            if self._cancel.is_set():
                raise Cancelled("the request was cancelled")
        audios = [np.ascontiguousarray(a, dtype=np.float32) for a in result.audios]
        extra = {
            "bpm": bpm, "key": key, "variant": variant.name, "task": task, "steps": steps,
            "shift": variant.shift, "guidance": variant.guidance, "caption": text,
            "language": request.language, "lora": active, "thinking": bool(plan),
            **({"plan": plan} if plan else {}),
            **({"plan_rejected": rejected} if rejected else {}),
        }  # fmt: skip
        return audios, extra

    def _song(
        self, request: SongRequest, audio: np.ndarray, seed: int, extra: dict[str, Any]
    ) -> RenderedSong:
        return RenderedSong(
            audio=audio,
            sample_rate_hz=SAMPLE_RATE_HZ,
            seed=seed,
            engine=self.name,
            model_version=self.model_version,
            title=request.title,
            lyrics=request.lyrics,
            metadata={
                "engine": self.name,
                "model_version": self.model_version,
                "vocal": "none" if request.instrumental else request.language,
                **extra,
            },
        )


def _stereo(audio: np.ndarray) -> np.ndarray:
    """[2, samples] float32 at 48 kHz (mono is doubled: the VAE takes stereo only)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    if audio.shape[0] != 2:
        raise InvalidRequest(
            "audio", str(audio.shape), "source audio must be mono or stereo [channels, samples]"
        )
    return np.ascontiguousarray(audio)


def _whole_frames(audio: np.ndarray, length: int) -> np.ndarray:
    """`audio` padded with silence to `length` samples, rounded up to whole VAE frames (1920
    samples): the pipeline drops a partial last frame of a source."""
    length = max(length, audio.shape[1])
    frames = -(-length // VAE_HOP)
    out = np.zeros((2, frames * VAE_HOP), np.float32)
    out[:, : audio.shape[1]] = audio
    return out


def _tensor(value: Any) -> Any:
    """Source audio goes to the pipeline as a torch tensor; other options as they are."""
    import torch

    return torch.from_numpy(value) if isinstance(value, np.ndarray) else value


def splice(generated: np.ndarray, source: np.ndarray, keep: list[tuple[int, int]]) -> np.ndarray:
    """`generated` with the `keep` ranges of `source` put back exactly, joined by short crossfades
    on the generated side. The generated audio is first brought to the source's level (the pipeline
    normalises its output to -1 dBFS), measured over the kept ranges, where both hold the same music."""
    out = np.array(generated, dtype=np.float32, copy=True)
    kept = [(a, min(b, out.shape[1], source.shape[1])) for a, b in keep if b > a]
    if not kept:
        return out
    gen = np.concatenate([out[:, a:b] for a, b in kept], axis=1)
    ref = np.concatenate([source[:, a:b] for a, b in kept], axis=1)
    gen_rms = float(np.sqrt(np.mean(np.square(gen, dtype=np.float64))))
    src_rms = float(np.sqrt(np.mean(np.square(ref, dtype=np.float64))))
    if gen_rms > 1e-6 and src_rms > 1e-6:
        out *= np.float32(src_rms / gen_rms)
    fade = round(SPLICE_FADE_S * SAMPLE_RATE_HZ)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    for a, b in kept:
        out[:, a:b] = source[:, a:b]
        n = min(fade, out.shape[1] - b, source.shape[1] - b)
        if n > 0:  # after a kept range: from the source's own continuation into the new audio
            out[:, b : b + n] = source[:, b : b + n] * (1 - ramp[:n]) + out[:, b : b + n] * ramp[:n]
        n = min(fade, a)
        if n > 0:  # before a kept range: from the new audio into the source
            out[:, a - n : a] = out[:, a - n : a] * (1 - ramp[:n]) + source[:, a - n : a] * ramp[:n]
    return out
