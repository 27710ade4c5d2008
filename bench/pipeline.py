"""Benchmark: one 180 s song through the whole pipeline on this machine, as a real-time factor.

Baselines measured in the same run: real time itself (the song's duration), and for the finishing part
a straightforward reference chain (pyloudnorm normalisation + scipy 4x resampling true-peak check +
ffmpeg's default AAC and MP3 encoders).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pyloudnorm
from scipy.signal import resample_poly

from functions.gen import get_engine
from functions.pipeline import PostOptions, finish_song, prepare
from functions.post.credentials import make_dev_chain
from functions.post.encode import STUDIO_FORMATS, write_wav
from functions.post.watermark import get_backend
from functions.request import build_request


def _reference_finish(audio: np.ndarray, rate: int, folder: Path) -> None:
    meter = pyloudnorm.Meter(rate)
    loud = meter.integrated_loudness(audio.T.astype(np.float64))
    out = pyloudnorm.normalize.loudness(audio.T.astype(np.float64), loud, -14.0).T
    peak = np.abs(resample_poly(out, 4, 1, axis=1)).max()
    out = out * min(1.0, 10 ** (-1.5 / 20) / peak)  # no limiter: just a gain to the ceiling
    wav = folder / "ref.wav"
    write_wav(out.astype(np.float32), rate, wav)
    procs = [
        subprocess.Popen(["ffmpeg", "-v", "error", "-y", "-i", str(wav), *args, str(folder / name)])
        for name, args in (
            ("ref.m4a", ["-c:a", "aac", "-b:a", "256k"]),
            ("ref.mp3", ["-c:a", "libmp3lame", "-b:a", "320k"]),
        )
    ]
    for p in procs:
        p.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument("--prompt", default="dark rock anthem about the open road, male vocals")
    args = parser.parse_args()
    request = build_request(prompt=args.prompt, duration_s=args.duration, seed=3, variations=1)
    t0 = time.perf_counter()
    engine = get_engine("sketch")
    load_s = time.perf_counter() - t0
    marks: list[tuple[str, float]] = []
    start = time.perf_counter()
    request, written_by = prepare(
        request, engine, on_progress=lambda s, i, n: marks.append((s, time.perf_counter()))
    )
    songs = engine.generate(request, on_progress=lambda s, i, n: marks.append((s, time.perf_counter())))
    generated = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        post = PostOptions(formats=("wav", "m4a", "mp3"))
        finish_song(songs[0], 0, request, "bench", post, Path(tmp), None, written_by)
        finished = time.perf_counter()
        finish_song(songs[0], 0, request, "cli", PostOptions(formats=("m4a",)), Path(tmp), None, written_by)
        m4a_only = time.perf_counter() - finished
        load_start = time.perf_counter()
        perth = get_backend("perth")
        watermark_load = time.perf_counter() - load_start
        studio_post = PostOptions(formats=STUDIO_FORMATS, hls=True, signing=make_dev_chain(), watermark=perth)
        studio_start = time.perf_counter()
        finish_song(songs[0], 0, request, "studio", studio_post, Path(tmp), None, written_by)
        studio = time.perf_counter() - studio_start
        cli_post = PostOptions(formats=("m4a",), signing=studio_post.signing, watermark=perth)
        cli_start = time.perf_counter()
        finish_song(songs[0], 0, request, "cli-default", cli_post, Path(tmp), None, written_by)
        cli_default = time.perf_counter() - cli_start
        reference_start = time.perf_counter()
        _reference_finish(songs[0].audio, songs[0].sample_rate_hz, Path(tmp))
        reference = time.perf_counter() - reference_start
    total = finished - start
    finish = finished - generated
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {__import__('os').cpu_count()} cores")
    print(f"engine load (once per process): {load_s:.2f} s")
    first = {}
    for stage, t in marks:
        first.setdefault(stage, t)
    previous = start
    for stage, t in sorted(first.items(), key=lambda kv: kv[1]):
        print(f"  until '{stage}' starts: {t - previous:.2f} s")
        previous = t
    print(f"  generate (compose + band + vocals): {generated - start:.2f} s")
    print(f"  finish (master + wav/m4a/mp3):      {finish:.2f} s")
    print(
        f"whole pipeline: {total:.2f} s for {args.duration:.0f} s of audio -> "
        f"{args.duration / total:.1f}x real time"
        f" (target >= 20x)"
    )
    print(
        "studio finishing (Perth watermark + master + wav/m4a/mp3/flac/preview + HLS + C2PA signing): "
        f"{studio:.2f} s -> {args.duration / studio:.1f}x real time (target >= 30x); whole studio pipeline "
        f"{args.duration / (generated - start + studio):.1f}x; Perth loads once per process "
        f"in {watermark_load:.2f} s"
    )
    print(
        f"genmusic's default finishing (Perth + master + m4a + signing): {cli_default:.2f} s -> "
        f"{args.duration / cli_default:.1f}x; with generation "
        f"{args.duration / (generated - start + cli_default):.1f}x"
    )
    print(
        f"finishing, m4a only, no watermark or signing: {m4a_only:.2f} s -> "
        f"{args.duration / m4a_only:.1f}x real time"
    )
    print(
        "finishing alone (master + wav + m4a + mp3, no watermark or signing): "
        f"{args.duration / finish:.1f}x real time (target >= 60x); reference chain "
        f"{reference:.2f} s -> ours is {reference / finish:.2f}x the reference's speed"
    )


if __name__ == "__main__":
    main()
