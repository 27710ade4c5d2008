"""Encoding with ffmpeg: 24-bit wav, m4a (AAC 256k, faststart), mp3 (320k and a 128k preview), flac, HLS."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile

from functions.errors import MissingTool, RefrainError

FORMATS = ("wav", "m4a", "mp3", "flac", "preview.mp3")
STUDIO_FORMATS = FORMATS
AI_LABEL = "AI-generated"
# Native AAC encoder at 256 kbit/s: its bit-saving tools (M/S, intensity stereo, PNS, TNS) buy
# nothing audible at this rate and cost 3.5x the encoding time (8.5 s -> 2.4 s for 3 minutes).
_AAC = ["-c:a", "aac", "-b:a", "256k", "-aac_coder", "fast"]
_AAC += ["-aac_ms", "0", "-aac_is", "0", "-aac_pns", "0", "-aac_tns", "0", "-movflags", "+faststart"]
_CODEC_ARGS = {
    "m4a": _AAC,
    "mp3": ["-c:a", "libmp3lame", "-b:a", "320k", "-compression_level", "7", "-id3v2_version", "3"],
    "preview.mp3": ["-c:a", "libmp3lame", "-b:a", "128k", "-compression_level", "7", "-id3v2_version", "3"],
    "flac": ["-c:a", "flac", "-sample_fmt", "s32", "-bits_per_raw_sample", "24", "-compression_level", "5"],
}
HLS_SEGMENT_S = 4


def write_wav(audio: np.ndarray, sample_rate_hz: int, path: Path) -> None:
    """24-bit PCM wav; deterministic bytes for the same audio."""
    soundfile.write(str(path), np.ascontiguousarray(audio.T), sample_rate_hz, subtype="PCM_24", format="WAV")


def encode(
    audio: np.ndarray,
    sample_rate_hz: int,
    outputs: dict[str, Path],
    title: str,
    comment: str,
    ffmpeg: str = "ffmpeg",
) -> None:
    """Write every format in `outputs` (format -> path) from float32 `audio` [2, samples], all at once.

    The encoders read raw float32 from pipes while the wav is written, so no intermediate file is needed
    and the slowest encoder (AAC) starts at once.
    """
    unknown = [fmt for fmt in outputs if fmt not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format {unknown[0]!r}; known: {', '.join(FORMATS)}")
    interleaved = np.ascontiguousarray(audio.T, dtype="<f4").tobytes()
    processes = []
    for fmt, path in outputs.items():
        if fmt == "wav":
            continue
        command = [  # no -nostdin: stdin is the audio here
            ffmpeg,
            "-v",
            "error",
            "-y",
            "-f",
            "f32le",
            "-ar",
            str(sample_rate_hz),
            "-ac",
            str(audio.shape[0]),
            "-i",
            "pipe:0",
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
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError as exc:
            raise MissingTool(f"ffmpeg is not installed ({ffmpeg}); run scripts/install.sh") from exc
        feeder = threading.Thread(target=_feed, args=(process, interleaved), daemon=True)
        feeder.start()
        processes.append((fmt, process, feeder))
    if "wav" in outputs:
        write_wav(audio, sample_rate_hz, outputs["wav"])
    failures = []
    for fmt, process, feeder in processes:
        feeder.join()
        stderr = process.stderr.read() if process.stderr else b""
        if process.wait() != 0:
            failures.append(f"{fmt}: {stderr.decode(errors='replace').strip()[:200]}")
    if failures:
        raise RuntimeError("ffmpeg failed: " + "; ".join(failures))


def _feed(process: subprocess.Popen[bytes], data: bytes) -> None:
    assert process.stdin is not None
    try:
        process.stdin.write(data)
    except BrokenPipeError:
        pass  # ffmpeg stopped early; its exit status and stderr say why
    finally:
        process.stdin.close()


def decode(path: Path, ffmpeg: str = "ffmpeg") -> tuple[np.ndarray, int]:
    """Any file ffmpeg reads, as float32 [2, samples] at its own sample rate."""
    probe = subprocess.run(
        [
            ffmpeg.replace("ffmpeg", "ffprobe"),
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=sample_rate",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0 or not probe.stdout.strip():
        raise RefrainError(f"cannot read audio from {path.name}")
    rate = int(probe.stdout.strip().splitlines()[0])
    raw = subprocess.run(
        [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "2", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, dtype="<f4").reshape(-1, 2).T.copy(), rate


def make_hls(m4a: Path, folder: Path, ffmpeg: str = "ffmpeg") -> Path:
    """HLS for in-browser streaming: the m4a's AAC remuxed (no re-encode) into 4 s fMP4 segments."""
    folder.mkdir(parents=True, exist_ok=True)
    playlist = folder / "index.m3u8"
    command = [
        ffmpeg,
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-i",
        str(m4a),
        "-c",
        "copy",
        "-map_metadata",
        "-1",
        "-f",
        "hls",
        "-hls_time",
        str(HLS_SEGMENT_S),
        "-hls_playlist_type",
        "vod",
        "-hls_segment_type",
        "fmp4",
        "-hls_fmp4_init_filename",
        "init.mp4",
        "-hls_segment_filename",
        str(folder / "segment-%03d.m4s"),
        "-fflags",
        "+bitexact",
        str(playlist),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg HLS failed: {result.stderr.strip()[:200]}")
    return playlist


def output_names(base: str, index: int, formats: Sequence[str]) -> dict[str, str]:
    """song.m4a, song-2.m4a, … for variation `index` (0-based)."""
    stem = base if index == 0 else f"{base}-{index + 1}"
    return {fmt: f"{stem}.{fmt}" for fmt in formats}
