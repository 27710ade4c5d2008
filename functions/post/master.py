"""Mastering: integrated loudness to a target with a gentle 4x-oversampled true-peak limiter."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from functions.errors import InvalidRequest
from functions.post.loudness import HOP_S, PeakMeter, gated_loudness, k_weighted, loudness_range

DEFAULT_TARGET_LUFS = -14.0
DEFAULT_CEILING_DBTP = -1.0
# Lossy encoders overshoot the master's true peak by a few tenths of a dB; leaving this much room
# keeps the decoded m4a/mp3 under the ceiling too.
CODEC_HEADROOM_DB = 0.5
BLOCK = 64  # limiter resolution in samples (1.5 ms at 44.1 kHz)
LIMITER_WINDOW_S = 0.030  # attack/hold/release span: slow enough not to pump on drums


@dataclass(frozen=True)
class MasterReport:
    integrated_lufs: float
    true_peak_dbtp: float
    loudness_range_lu: float
    input_lufs: float
    gain_db: float
    max_gain_reduction_db: float


@dataclass(frozen=True)
class Mastered:
    audio: np.ndarray  # float32 [channels, samples]
    gain: np.ndarray  # float32 [samples]: the gain applied, so stems can follow the mix exactly
    report: MasterReport


def _limiter_curve(peaks: np.ndarray, gain: float, ceiling: float, window_blocks: int) -> np.ndarray:
    """Per-block gain ≤ what each block (and its neighbours) needs to stay under `ceiling`."""
    with np.errstate(divide="ignore"):
        needed = np.minimum(1.0, ceiling / np.maximum(peaks * gain, 1e-12))
    held = minimum_filter1d(needed, size=2 * window_blocks + 1, mode="nearest")
    # The average of `held` over ±window/2 never exceeds any block's need inside ±window.
    return uniform_filter1d(held, size=window_blocks + 1, mode="nearest")


def master(
    audio: np.ndarray,
    sample_rate_hz: int,
    target_lufs: float = DEFAULT_TARGET_LUFS,
    ceiling_dbtp: float = DEFAULT_CEILING_DBTP,
    headroom_db: float = CODEC_HEADROOM_DB,
) -> Mastered:
    """Bring `audio` [channels, samples] to `target_lufs` with true peaks ≤ `ceiling_dbtp - headroom_db`."""
    # 1. check inputs
    if not -30.0 <= target_lufs <= -5.0:
        raise InvalidRequest(
            "target_lufs", target_lufs, f"loudness target {target_lufs} LUFS is outside -30…-5"
        )
    audio = np.asarray(audio, dtype=np.float32)
    n = audio.shape[-1]
    # 2. measure once: K-weighted energy and true peak per limiter block
    weighted = k_weighted(audio, sample_rate_hz)
    n_blocks = -(-n // BLOCK)
    squares = np.zeros(n_blocks * BLOCK, np.float32)
    squares[:n] = np.einsum("cn,cn->n", weighted, weighted)
    block_energy = squares.reshape(n_blocks, BLOCK).sum(axis=1, dtype=np.float64)
    input_lufs = gated_loudness(_hops_from_blocks(block_energy, sample_rate_hz), sample_rate_hz)
    if not np.isfinite(input_lufs):
        return Mastered(
            audio.copy(),
            np.ones(n, np.float32),
            MasterReport(input_lufs, float("-inf"), 0.0, input_lufs, 0.0, 0.0),
        )
    meter = PeakMeter(audio, BLOCK)
    ceiling = 10 ** ((ceiling_dbtp - headroom_db) / 20)
    window_blocks = max(2, int(LIMITER_WINDOW_S * sample_rate_hz / BLOCK))

    # 3. find the make-up gain whose limited result hits the target (loudness from block energies)
    gain = 10 ** ((target_lufs - input_lufs) / 20)
    curve = np.ones(n_blocks)
    for _ in range(8):
        peaks = meter.envelope(ceiling / gain)
        curve = _limiter_curve(peaks, gain, ceiling, window_blocks)
        hops = _hops_from_blocks(block_energy * (gain * curve) ** 2, sample_rate_hz)
        error_db = target_lufs - gated_loudness(hops, sample_rate_hz)
        if abs(error_db) < 0.02:
            break
        gain *= 10 ** (error_db / 20)

    # 4. apply the curve, linear across each block from the mean of each pair of neighbouring blocks:
    #    every sample's gain stays ≤ the largest of three neighbours, each ≤ what the block needs
    block_gain = (gain * curve).astype(np.float32)
    edges = np.empty(n_blocks + 1, np.float32)
    edges[0], edges[-1] = block_gain[0], block_gain[-1]
    edges[1:-1] = 0.5 * (block_gain[:-1] + block_gain[1:])
    ramp = (np.arange(BLOCK, dtype=np.float32) + 0.5) / BLOCK
    per_sample = (edges[:-1, None] + (edges[1:] - edges[:-1])[:, None] * ramp[None, :]).reshape(-1)[:n]
    out = audio * per_sample

    # 5. verify the true peak with the exact meter; trim if interpolation left any overshoot
    true_peak = PeakMeter(out, BLOCK).max_dbtp()
    limit_db = ceiling_dbtp - headroom_db
    if true_peak > limit_db:
        trim = np.float32(10 ** ((limit_db - true_peak) / 20))
        out *= trim
        per_sample *= trim
        gain *= float(trim)
        true_peak = limit_db
    # Loudness of the result from the K-weighted block energies already measured, times each block's
    # gain squared: within 0.02 LU of re-filtering the output (tests hold it to ffmpeg), at no cost.
    hops = _hops_from_blocks(block_energy * (gain * curve) ** 2, sample_rate_hz)
    report = MasterReport(
        integrated_lufs=gated_loudness(hops, sample_rate_hz),
        loudness_range_lu=loudness_range(hops, sample_rate_hz),
        true_peak_dbtp=true_peak,
        input_lufs=input_lufs,
        gain_db=float(20 * np.log10(gain)),
        max_gain_reduction_db=float(-20 * np.log10(curve.min())),
    )
    return Mastered(out, per_sample, report)


def _hops_from_blocks(block_energy: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Per-hop energy from per-block energy; blocks straddling a hop edge go to the hop they start in."""
    hop = round(HOP_S * sample_rate_hz)
    hop_of_block = (np.arange(len(block_energy)) * BLOCK) // hop
    n_hops = (len(block_energy) * BLOCK) // hop
    keep = hop_of_block < n_hops
    return np.bincount(hop_of_block[keep], weights=block_energy[keep], minlength=n_hops)
