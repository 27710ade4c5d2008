"""Independent measurements for tests: ffmpeg's own loudness meter and ffprobe's duration."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import soundfile


def _ebur128_summary(path: Path) -> str:
    """The summary ffmpeg's EBU R128 meter prints for `path` (true peak included)."""
    result = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-nostats",
            "-i",
            str(path),
            "-af",
            "ebur128=peak=true",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stderr[result.stderr.rindex("Summary:") :]


def ffmpeg_loudness(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) as ffmpeg's ebur128 filter measures them."""
    summary = _ebur128_summary(path)
    integrated = float(re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary).group(1))  # type: ignore[union-attr]
    peak = float(re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary).group(1))  # type: ignore[union-attr]
    return integrated, peak


def ffmpeg_loudness_range(path: Path) -> float:
    """Loudness range (LU) as ffmpeg's ebur128 filter measures it."""
    return float(re.search(r"LRA:\s+([\d.]+) LU", _ebur128_summary(path)).group(1))  # type: ignore[union-attr]


def ffprobe_duration_s(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip())


def read(path: Path) -> tuple[np.ndarray, int]:
    """Audio as float64 [channels, samples] and its rate."""
    data, rate = soundfile.read(str(path), always_2d=True)
    return data.T, rate


def active_rms_db(audio: np.ndarray) -> float:
    """RMS in dBFS over the loudest tenth of 50 ms windows: is anything audible in there?"""
    mono = np.mean(audio, axis=0)
    window = 2205
    n = len(mono) // window * window
    if n == 0:
        return float("-inf")
    rms = np.sqrt(np.mean(mono[:n].reshape(-1, window) ** 2, axis=1))
    top = np.sort(rms)[-max(1, len(rms) // 10) :]
    value = float(np.mean(top))
    return 20 * np.log10(value) if value > 0 else float("-inf")
