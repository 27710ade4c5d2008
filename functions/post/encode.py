"""Encoding with ffmpeg: 24-bit wav master, m4a (AAC, faststart) and mp3, run side by side."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile

from functions.errors import MissingTool

FORMATS = ("wav", "m4a", "mp3")
AI_LABEL = "AI-generated"
# Native AAC encoder at 256 kbit/s: its bit-saving tools (M/S, intensity stereo, PNS, TNS) buy
# nothing audible at this rate and cost 3.5x the encoding time (8.5 s -> 2.4 s for 3 minutes).
_CODEC_ARGS = {
    "m4a": [
        "-c:a",
        "aac",
        "-b:a",
        "256k",
        "-aac_coder",
        "fast",
        "-aac_ms",
        "0",
        "-aac_is",
        "0",
        "-aac_pns",
        "0",
        "-aac_tns",
        "0",
        "-movflags",
        "+faststart",
    ],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "320k", "-compression_level", "7", "-id3v2_version", "3"],
}


def write_wav(audio: np.ndarray, sample_rate_hz: int, path: Path) -> None:
    """24-bit PCM wav; deterministic bytes for the same audio."""
    soundfile.write(str(path), np.ascontiguousarray(audio.T), sample_rate_hz, subtype="PCM_24", format="WAV")


def encode(
    master_wav: Path, outputs: dict[str, Path], title: str, comment: str, ffmpeg: str = "ffmpeg"
) -> None:
    """Encode `master_wav` into every format in `outputs` (format -> path) at once, one process each."""
    processes = []
    for fmt, path in outputs.items():
        if fmt == "wav":
            continue
        if fmt not in _CODEC_ARGS:
            raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
        command = [
            ffmpeg,
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            str(master_wav),
            "-map_metadata",
            "-1",
            *_CODEC_ARGS[fmt],
            "-metadata",
            f"title={title}",
            "-metadata",
            f"comment={comment}",
            "-fflags",
            "+bitexact",
            "-flags:a",
            "+bitexact",
            str(path),
        ]
        try:
            processes.append((fmt, subprocess.Popen(command, stderr=subprocess.PIPE)))
        except FileNotFoundError as exc:
            raise MissingTool(f"ffmpeg is not installed ({ffmpeg}); run scripts/install.sh") from exc
    failures = []
    for fmt, process in processes:
        _, stderr = process.communicate()
        if process.returncode != 0:
            failures.append(f"{fmt}: {stderr.decode(errors='replace').strip()[:200]}")
    if failures:
        raise RuntimeError("ffmpeg failed: " + "; ".join(failures))


def output_names(base: str, index: int, formats: Sequence[str]) -> dict[str, str]:
    """song.m4a, song-2.m4a, … for variation `index` (0-based)."""
    stem = base if index == 0 else f"{base}-{index + 1}"
    return {fmt: f"{stem}.{fmt}" for fmt in formats}
