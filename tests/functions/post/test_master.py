"""Mastering hits the loudness target under the true-peak ceiling for quiet, loud and dynamic input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample_poly

from functions.errors import InvalidRequest
from functions.post.encode import write_wav
from functions.post.loudness import integrated_loudness, true_peak_dbtp
from functions.post.master import master
from tests.utils.audio import ffmpeg_loudness, ffmpeg_loudness_range
from tests.utils.songs import sketch_song

RATE = 44100


@pytest.fixture(scope="module")
def sketch_mix() -> np.ndarray:
    lyrics = "[verse]\nthe train goes by\n[chorus]\noh oh"
    return sketch_song(prompt="rock song about trains", lyrics=lyrics, duration_s=16, seed=4).audio


def _variants(mix: np.ndarray) -> dict[str, np.ndarray]:
    quiet = mix * 10 ** (-30 / 20)
    loud = np.clip(mix * 10 ** (12 / 20), -1, 1)  # hot, clipped input
    dynamic = mix.copy()
    half = mix.shape[1] // 2
    dynamic[:, :half] *= 10 ** (-24 / 20)  # a whisper, then the full band
    return {"quiet": quiet, "loud": loud, "dynamic": dynamic}


@pytest.mark.parametrize("kind", ["quiet", "loud", "dynamic"])
@pytest.mark.parametrize("target", [-14.0, -16.0])
def test_master_reaches_target_under_ceiling_measured_by_ffmpeg(
    sketch_mix: np.ndarray, kind: str, target: float, tmp_path: Path
) -> None:
    audio = _variants(sketch_mix)[kind].astype(np.float32)
    mastered = master(audio, RATE, target_lufs=target)
    path = tmp_path / f"{kind}.wav"
    write_wav(mastered.audio, RATE, path)
    integrated, true_peak = ffmpeg_loudness(path)
    assert abs(integrated - target) <= 0.5, integrated
    assert true_peak <= -1.0, true_peak
    assert abs(mastered.report.integrated_lufs - integrated) < 0.2


def test_gain_curve_applies_to_stems_exactly(sketch_mix: np.ndarray) -> None:
    mastered = master(sketch_mix, RATE)
    assert np.allclose(sketch_mix * mastered.gain, mastered.audio, atol=1e-6)


def test_silence_is_left_alone() -> None:
    silence = np.zeros((2, RATE * 12), np.float32)
    assert np.array_equal(master(silence, RATE).audio, silence)


def test_target_out_of_range_is_refused(sketch_mix: np.ndarray) -> None:
    with pytest.raises(InvalidRequest, match="outside"):
        master(sketch_mix, RATE, target_lufs=3.0)


def test_meters_agree_with_references(sketch_mix: np.ndarray) -> None:
    reference = pyloudnorm.Meter(RATE).integrated_loudness(sketch_mix.T.astype(np.float64))
    assert abs(integrated_loudness(sketch_mix, RATE) - reference) < 0.01
    oversampled = resample_poly(sketch_mix.astype(np.float64), 4, 1, axis=1)
    assert abs(true_peak_dbtp(sketch_mix) - 20 * np.log10(np.abs(oversampled).max())) < 0.05


def test_loudness_range_agrees_with_ffmpeg(sketch_mix: np.ndarray, tmp_path: Path) -> None:
    # 32 s: on clips much shorter than the 3 s windows' reach, edge handling dominates the statistic
    dynamic = _variants(np.concatenate([sketch_mix, sketch_mix], axis=1))["dynamic"].astype(np.float32)
    mastered = master(dynamic, RATE)
    path = tmp_path / "dynamic.wav"
    write_wav(mastered.audio, RATE, path)
    ffmpeg_lra = ffmpeg_loudness_range(path)
    assert mastered.report.loudness_range_lu > 5.0  # a whisper then a band: a wide range
    assert abs(mastered.report.loudness_range_lu - ffmpeg_lra) < 0.5
