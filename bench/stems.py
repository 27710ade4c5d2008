"""Benchmark: HTDemucs stems through our Separator vs the `demucs` command-line tool, same model and input.

No trained weights can be downloaded here, so both use one random-weight HTDemucs (channels=16) saved in
demucs' own format; the arithmetic per second of audio is the same as for trained weights of that size.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from functions.gen.sketch import SketchEngine
from functions.post.encode import write_wav
from functions.post.stems import get_separator
from functions.request import build_request


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--channels", type=int, default=16)
    args = parser.parse_args()
    from demucs.htdemucs import HTDemucs
    from demucs.states import serialize_model

    engine = SketchEngine()
    engine.load()
    song = engine.generate(
        build_request(
            prompt="rock anthem", instrumental=True, duration_s=args.duration, seed=1, variations=1
        ),
        on_progress=lambda *_: None,
    )[0]
    with tempfile.TemporaryDirectory() as tmp:
        repo, folder = Path(tmp) / "models", Path(tmp)
        repo.mkdir()
        torch.manual_seed(0)
        model = HTDemucs(sources=["drums", "bass", "other", "vocals"], channels=args.channels)
        torch.save(serialize_model(model, OmegaConf.create({}), half=False), repo / "bench.th")
        source = folder / "song.wav"
        write_wav(song.audio, song.sample_rate_hz, source)

        start = time.perf_counter()
        command = [
            sys.executable,
            "-m",
            "demucs.separate",
            "--repo",
            str(repo),
            "-n",
            "bench",
            "-o",
            str(folder / "cli"),
            "--int24",
            str(source),
        ]
        subprocess.run(command, check=True, capture_output=True)
        cli = time.perf_counter() - start

        start = time.perf_counter()
        separator = get_separator("bench", repo)
        loaded = time.perf_counter()
        stems = separator.separate(song.audio, song.sample_rate_hz)
        for name, audio in stems.items():
            write_wav(audio, song.sample_rate_hz, folder / f"ours-{name}.wav")
        ours = time.perf_counter() - start
        separate_only = time.perf_counter() - loaded
    print(
        f"HTDemucs channels={args.channels}, {args.duration:.0f} s stereo 44.1 kHz, "
        f"CPU ({torch.get_num_threads()} threads)"
    )
    print(f"demucs CLI (process start, load, separate, write 4 wav): {cli:.2f} s")
    print(
        f"ours in a fresh process' first call (load, separate, write 4 wav): {ours:.2f} s "
        f"-> {cli / ours:.2f}x the CLI's speed (target: no slower)"
    )
    print(
        f"ours with the model already loaded (the studio's case): {separate_only:.2f} s "
        f"-> {args.duration / separate_only:.2f}x real time"
    )


if __name__ == "__main__":
    main()
