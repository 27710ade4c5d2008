"""Watermarks: Perth survives every format and 128k re-encodes; AudioSeal loads through its real loader."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from functions.errors import MissingTool
from functions.post.encode import FORMATS, decode, encode, make_hls
from functions.post.master import master
from functions.post.watermark import AudioSealBackend, detect, embed, get_backend, message_for
from tests.utils.checkpoints import tiny_audioseal as _tiny_audioseal
from tests.utils.songs import sketch_song

RATE = 44100


@pytest.fixture(scope="module")
def perth():  # type: ignore[no-untyped-def]
    return get_backend("perth")


@pytest.fixture(scope="module")
def rock():  # type: ignore[no-untyped-def]
    lyrics = "[verse]\nwe drive all night"
    return sketch_song(prompt="rock anthem about the open road", lyrics=lyrics, duration_s=20, seed=3)


@pytest.fixture(scope="module")
def files(rock, perth, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("watermarked")
    marked, _ = embed(perth, rock.audio, RATE, message_for("song-1"))
    out = {fmt: folder / f"song.{fmt}" for fmt in FORMATS}
    encode(master(marked, RATE).audio, RATE, out, "t", "AI-generated")
    out["hls"] = make_hls(out["m4a"], folder / "song.hls")
    out["clean.wav"] = folder / "clean.wav"
    encode(master(rock.audio, RATE).audio, RATE, {"wav": out["clean.wav"]}, "t", "")
    return out


@pytest.mark.parametrize("fmt", [*FORMATS, "hls"])
def test_perth_mark_is_found_in_every_format(perth, files: dict[str, Path], fmt: str) -> None:  # type: ignore[no-untyped-def]
    found = detect(perth, *decode(files[fmt]))
    assert found.present and found.confidence > 0.8, (fmt, found)


def test_perth_mark_survives_128k_reencodes_and_is_absent_from_the_original(  # type: ignore[no-untyped-def]
    perth, files: dict[str, Path], tmp_path: Path
) -> None:
    for name, codec in (
        ("again.mp3", ["-c:a", "libmp3lame", "-b:a", "128k"]),
        ("again.m4a", ["-c:a", "aac", "-b:a", "128k"]),
    ):
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(files["m4a"]), *codec, str(tmp_path / name)], check=True
        )
        found = detect(perth, *decode(tmp_path / name))
        assert found.present and found.confidence > 0.7, (name, found)
    assert not detect(perth, *decode(files["clean.wav"])).present


def test_watermarked_stems_sum_to_the_watermarked_mix(perth, rock) -> None:  # type: ignore[no-untyped-def]
    mix, stems = embed(perth, rock.audio, RATE, 1, rock.stems)
    assert stems is not None and set(stems) == set(rock.stems)
    assert np.array_equal(sum(stems.values()), mix) or np.allclose(sum(stems.values()), mix, atol=1e-6)
    assert detect(perth, mix, RATE).present
    change = np.sqrt(np.mean((mix - rock.audio) ** 2) / np.mean(rock.audio**2))
    assert 0.01 < change < 0.3  # a real change, well under the music


def test_audioseal_loads_tiny_checkpoints_and_carries_16_bits(tmp_path: Path) -> None:
    backend = AudioSealBackend(_tiny_audioseal("generator", tmp_path), _tiny_audioseal("detector", tmp_path))
    audio = np.random.default_rng(0).standard_normal((2, RATE * 3)).astype(np.float32) * 0.1
    marked, _ = embed(backend, audio, RATE, message_for("song-7"))
    assert marked.shape == audio.shape and not np.array_equal(marked, audio)
    found = detect(backend, marked, RATE)
    assert found.backend == "audioseal" and 0.0 <= found.confidence <= 1.0
    assert (
        found.message is not None and 0 <= found.message < 2**16
    )  # random weights: a value, not the payload


def test_missing_audioseal_weights_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MissingTool, match="never downloaded"):
        AudioSealBackend(tmp_path / "no.pth", tmp_path / "no.pth")
