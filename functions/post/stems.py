"""Stems by source separation (HTDemucs) for engines that render no true stems, and stem zips."""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

import numpy as np
import soxr

from functions.errors import MissingTool

STEM_ORDER = ("vocals", "drums", "bass", "other")


class Separator:
    """A demucs model loaded once from a local model folder (`NAME.th` or `NAME.yaml` inside `repo`)."""

    def __init__(self, name: str, repo: Path, device: str = "cpu") -> None:
        if not (repo / f"{name}.th").is_file() and not (repo / f"{name}.yaml").is_file():
            raise MissingTool(f"no stem model {name!r} in {repo} (weights are never downloaded at run time)")
        import torch
        from demucs.pretrained import get_model

        self._torch = torch
        self.device = device
        self.model = get_model(name, repo=repo)
        self.model.to(device).eval()
        self.sources = list(self.model.sources)
        self.sample_rate_hz = int(self.model.samplerate)
        self._lock = threading.Lock()

    def separate(self, audio: np.ndarray, sample_rate_hz: int) -> dict[str, np.ndarray]:
        """`audio` [2, samples] -> {stem name: float32 [2, samples]} at the input's rate."""
        from demucs.apply import apply_model

        frames = np.ascontiguousarray(audio.T, dtype=np.float32)
        if sample_rate_hz != self.sample_rate_hz:
            frames = soxr.resample(frames, sample_rate_hz, self.sample_rate_hz)
        mix = self._torch.from_numpy(np.ascontiguousarray(frames.T))[None]
        # split=True runs the song in overlapping chunks of the model's own training segment: memory stays
        # bounded on CPU, and shorter chunks only add overlap work (measured slower than the demucs CLI).
        with self._lock, self._torch.inference_mode():
            separated = apply_model(
                self.model, mix, split=True, overlap=0.25, device=self.device, progress=False
            )[0]
        stems = {}
        for index, name in enumerate(self.sources):
            stem = separated[index].cpu().numpy().T
            if sample_rate_hz != self.sample_rate_hz:
                stem = soxr.resample(np.ascontiguousarray(stem), self.sample_rate_hz, sample_rate_hz)
            out = np.zeros_like(audio, dtype=np.float32)
            n = min(out.shape[1], stem.shape[0])
            out[:, :n] = stem[:n].T
            stems[name] = out
        return stems


def zip_stems(stems: dict[str, Path], destination: Path) -> Path:
    """One zip of the stem wavs (stored, not deflated: wav barely compresses and zipping stays instant)."""
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(stems, key=lambda n: STEM_ORDER.index(n) if n in STEM_ORDER else len(STEM_ORDER)):
            archive.write(stems[name], arcname=stems[name].name)
    return destination


_SEPARATORS: dict[tuple[str, str, str], Separator] = {}
_SEPARATORS_LOCK = threading.Lock()


def get_separator(name: str, repo: Path, device: str = "cpu") -> Separator:
    key = (name, str(repo), device)
    with _SEPARATORS_LOCK:
        if key not in _SEPARATORS:
            _SEPARATORS[key] = Separator(name, repo, device)
        return _SEPARATORS[key]
