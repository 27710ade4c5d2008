"""Inaudible watermarks behind one interface: Perth (embedded default, weights in its wheel) and AudioSeal.

Both models run on mono audio at their own rate (Perth 32 kHz, AudioSeal 16 kHz). Running them on a
44.1 kHz master directly would band-limit the whole song, so we mark the mid signal at the model's rate,
take the change the model made, and add it back to the full-band audio. With stems, the change is taken
per STFT bin as a gain on the mix (marked / unmarked) and applied to every stem, so the watermarked
stems still sum exactly to the watermarked mix.
"""

from __future__ import annotations

import contextlib
import io
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import soxr

from functions.errors import MissingTool

CHUNK_S = 15
OVERLAP_S = 1
N_FFT = 2048
HOP = 512
_MAX_BIN_GAIN = 4.0  # bins the mix barely fills cannot take an arbitrary boost onto a stem


@dataclass(frozen=True)
class Detection:
    backend: str
    present: bool
    confidence: float  # 0–1
    message: int | None = None  # the 16-bit payload, where the backend carries one


class Backend(Protocol):
    name: str
    sample_rate_hz: int

    def mark(self, mono: np.ndarray, message: int) -> np.ndarray: ...

    def detect(self, mono: np.ndarray) -> Detection: ...


class PerthBackend:
    """Resemble AI's Perth implicit watermarker (MIT); the trained weights come inside the package."""

    name = "perth"
    sample_rate_hz = 32000

    def __init__(self, device: str = "cpu") -> None:
        # Perth prints on load and imports the deprecated pkg_resources: keep the CLI's output clean.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            try:
                import perth
            except ImportError as exc:  # torchaudio / pkg_resources missing or mismatched
                raise MissingTool(f"the Perth watermark cannot load: {exc}") from exc
            self._model = perth.PerthImplicitWatermarker(device=device)
        import torch

        # Perth's public calls track gradients; inference mode makes a 3-minute embed 4.3 s -> 2.7 s.
        self._no_grad = torch.inference_mode
        self._lock = threading.Lock()  # one forward pass at a time per process

    def mark(self, mono: np.ndarray, message: int) -> np.ndarray:  # Perth carries presence, not a payload
        """Marks 15 s chunks whose changes cross-fade over 1 s: 1.8x faster than one pass over a 3-minute
        song (Perth's STFTs over one huge tensor are cache-bound), with the same mark strength."""
        rate = self.sample_rate_hz
        chunk, overlap = CHUNK_S * rate, OVERLAP_S * rate // 2
        with self._lock, self._no_grad():
            if len(mono) <= chunk + 2 * overlap:
                return np.asarray(self._model.apply_watermark(mono, rate), dtype=np.float32)
            change = np.zeros(len(mono), np.float64)
            weight = np.zeros(len(mono), np.float64)
            for start in range(0, len(mono), chunk):
                a, b = max(0, start - overlap), min(len(mono), start + chunk + overlap)
                piece = mono[a:b]
                delta = np.asarray(self._model.apply_watermark(piece, rate), dtype=np.float64) - piece
                w = np.ones(b - a)
                if a > 0:
                    w[: 2 * overlap] = np.linspace(0.0, 1.0, 2 * overlap)
                if b < len(mono):
                    w[-2 * overlap :] = np.minimum(w[-2 * overlap :], np.linspace(1.0, 0.0, 2 * overlap))
                change[a:b] += delta * w
                weight[a:b] += w
        return (mono + change / np.maximum(weight, 1e-9)).astype(np.float32)

    def detect(self, mono: np.ndarray) -> Detection:
        with self._lock, self._no_grad():
            bits = self._model.get_watermark(mono, self.sample_rate_hz, round=False)
        confidence = float(np.mean(bits)) if np.size(bits) else 0.0
        return Detection(self.name, confidence >= 0.5, confidence)


class AudioSealBackend:
    """Meta's AudioSeal (16-bit payload), loaded from local generator and detector checkpoints."""

    name = "audioseal"
    sample_rate_hz = 16000
    nbits = 16

    def __init__(self, generator_path: Path, detector_path: Path, device: str = "cpu") -> None:
        for path in (generator_path, detector_path):
            if not Path(path).is_file():
                raise MissingTool(
                    f"AudioSeal checkpoint {path} does not exist (weights are never downloaded)"
                )
        import torch
        from audioseal import AudioSeal
        from audioseal.libs.moshi.utils.compile import no_compile

        self._torch = torch
        self._no_compile = no_compile
        self._device = torch.device(device)
        self.generator = AudioSeal.load_generator(str(generator_path), nbits=self.nbits, device=self._device)
        self.detector = AudioSeal.load_detector(str(detector_path), nbits=self.nbits, device=self._device)
        self.generator.eval()
        self.detector.eval()

    def _tensor(self, mono: np.ndarray):
        return self._torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))[None, None].to(
            self._device
        )

    def mark(self, mono: np.ndarray, message: int) -> np.ndarray:
        bits = [(message >> i) & 1 for i in range(self.nbits)]
        # AudioSeal wraps its generator in a lazy torch.compile: on CPU that compiles with inductor for
        # every new song length (minutes each). Eager mode is what the finishing chain wants.
        with self._no_compile(), self._torch.inference_mode():
            payload = self._torch.tensor([bits], device=self._device)
            watermark = self.generator.get_watermark(self._tensor(mono), self.sample_rate_hz, message=payload)
        return mono + watermark[0, 0].cpu().numpy().astype(np.float32)

    def detect(self, mono: np.ndarray) -> Detection:
        with self._no_compile(), self._torch.inference_mode():
            probability, bits = self.detector.detect_watermark(self._tensor(mono), self.sample_rate_hz)
        value = sum(int(b) << i for i, b in enumerate(bits[0].round().int().tolist()))
        confidence = float(probability)
        return Detection(self.name, confidence >= 0.5, confidence, value)


def message_for(song_key: str) -> int:
    """The 16-bit payload for a song: stable for its id, so a found mark points back to it."""
    return zlib.crc32(song_key.encode()) & 0xFFFF


def _stft(signal: np.ndarray):
    import torch

    window = torch.hann_window(N_FFT)
    return torch.stft(
        torch.from_numpy(np.ascontiguousarray(signal, dtype=np.float32)),
        N_FFT,
        HOP,
        window=window,
        return_complex=True,
        center=True,
    )


def _istft(spectrum, length: int) -> np.ndarray:
    import torch

    window = torch.hann_window(N_FFT)
    return torch.istft(spectrum, N_FFT, HOP, window=window, center=True, length=length).numpy()


def embed(
    backend: Backend,
    audio: np.ndarray,
    sample_rate_hz: int,
    message: int,
    stems: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """Watermark `audio` [channels, samples] (and its stems, consistently). Returns new arrays."""
    rate = backend.sample_rate_hz
    mid = np.ascontiguousarray(audio.mean(axis=0), dtype=np.float32)
    low = soxr.resample(mid, sample_rate_hz, rate)
    marked = backend.mark(low, message)
    if stems is None:
        change = soxr.resample(np.ascontiguousarray(marked - low), rate, sample_rate_hz)
        n = min(len(change), audio.shape[1])
        out = audio.astype(np.float32, copy=True)
        out[:, :n] += change[:n]
        return out, None
    # The model's change as a gain per time-frequency bin, then applied to every stem channel.
    before, after = _stft(low), _stft(marked)
    magnitude = before.abs()
    gain = (after.abs() / magnitude.clamp_min(1e-6)).clamp(max=_MAX_BIN_GAIN)
    gain[magnitude < 1e-6] = 1.0
    delta = gain - 1.0
    marked_stems: dict[str, np.ndarray] = {}
    for name, stem in stems.items():
        out = stem.astype(np.float32, copy=True)
        for channel in range(stem.shape[0]):
            stem_low = soxr.resample(
                np.ascontiguousarray(stem[channel], dtype=np.float32), sample_rate_hz, rate
            )
            change = _istft(_stft(stem_low) * delta, len(stem_low))
            up = soxr.resample(np.ascontiguousarray(change, dtype=np.float32), rate, sample_rate_hz)
            n = min(len(up), out.shape[1])
            out[channel, :n] += up[:n]
        marked_stems[name] = out
    mix = np.zeros_like(audio, dtype=np.float32)
    for stem in marked_stems.values():
        mix += stem
    return mix, marked_stems


def detect(backend: Backend, audio: np.ndarray, sample_rate_hz: int) -> Detection:
    """Is the watermark in `audio` ([channels, samples] or mono)?"""
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    return backend.detect(
        soxr.resample(np.ascontiguousarray(mono, dtype=np.float32), sample_rate_hz, backend.sample_rate_hz)
    )


_BACKENDS: dict[tuple[str, str, str, str], Backend] = {}
_BACKENDS_LOCK = threading.Lock()


def get_backend(
    name: str, device: str = "cpu", generator_path: Path | None = None, detector_path: Path | None = None
) -> Backend:
    """The loaded backend (once per process: Perth's first pass alone takes seconds)."""
    key = (name, device, str(generator_path), str(detector_path))
    with _BACKENDS_LOCK:
        if key not in _BACKENDS:
            if name == "perth":
                _BACKENDS[key] = PerthBackend(device)
            elif name == "audioseal":
                if generator_path is None or detector_path is None:
                    raise MissingTool(
                        "AudioSeal needs REFRAIN_AUDIOSEAL_GENERATOR and REFRAIN_AUDIOSEAL_DETECTOR"
                    )
                _BACKENDS[key] = AudioSealBackend(generator_path, detector_path, device)
            else:
                raise MissingTool(f"unknown watermark backend {name!r}; known: perth, audioseal")
        return _BACKENDS[key]
