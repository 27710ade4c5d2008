"""Content credentials on every format, the full set of encodings, and HLS that plays back."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from functions.errors import RefrainError
from functions.gen.sketch import SketchEngine
from functions.post.credentials import (
    GENERATION_LABEL,
    TRAINED_ALGORITHMIC_MEDIA,
    Provenance,
    dev_signing_material,
    make_dev_chain,
    sign,
    verify,
)
from functions.post.encode import FORMATS, encode, make_hls
from functions.post.master import master
from functions.request import build_request
from infra.settings import Settings
from tests.utils.audio import ffmpeg_loudness, ffprobe_duration_s

RATE = 44100
PROVENANCE = Provenance(
    title="Harbour", engine="sketch", model_version="sketch-1", seed=9, prompt="calm folk about the harbour"
)


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    engine = SketchEngine()
    engine.load()
    song = engine.generate(
        build_request(
            prompt="calm folk about the harbour",
            lyrics="[verse]\nthe boats come in",
            duration_s=14,
            seed=9,
            variations=1,
        ),
        on_progress=lambda *_: None,
    )[0]
    folder = tmp_path_factory.mktemp("encoded")
    files = {fmt: folder / f"song.{fmt}" for fmt in FORMATS}
    encode(master(song.audio, RATE).audio, RATE, files, "Harbour", "AI-generated test")
    files["hls"] = make_hls(files["m4a"], folder / "song.hls")
    return files


def test_every_format_decodes_to_the_song(encoded: dict[str, Path]) -> None:
    for fmt, path in encoded.items():
        assert abs(ffprobe_duration_s(path) - 14.0) < 0.1, fmt


def test_bitrates_and_depths(encoded: dict[str, Path]) -> None:
    def probe(path: Path, entries: str) -> str:
        return subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-select_streams",
                "a:0",
                "-show_entries",
                entries,
                "-of",
                "csv=p=0",
                str(path),
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()

    assert probe(encoded["wav"], "stream=codec_name") == "pcm_s24le"
    assert probe(encoded["flac"], "stream=bits_per_raw_sample") == "24"
    assert abs(int(probe(encoded["mp3"], "stream=bit_rate")) - 320_000) < 10_000
    assert abs(int(probe(encoded["preview.mp3"], "stream=bit_rate")) - 128_000) < 10_000


def test_lossy_encodings_stay_under_the_ceiling(encoded: dict[str, Path]) -> None:
    for fmt in ("m4a", "mp3", "flac", "hls"):
        integrated, true_peak = ffmpeg_loudness(encoded[fmt])
        assert abs(integrated + 14) <= 0.5 and true_peak <= -1.0, (fmt, integrated, true_peak)


def test_hls_has_four_second_segments(encoded: dict[str, Path]) -> None:
    playlist = encoded["hls"].read_text()
    durations = [
        float(line.split(":")[1].rstrip(",")) for line in playlist.splitlines() if line.startswith("#EXTINF")
    ]
    assert len(durations) == 4 and all(d <= 4.1 for d in durations) and abs(sum(durations) - 14) < 0.1


@pytest.mark.parametrize("fmt", ["wav", "m4a", "mp3", "flac"])
def test_signed_files_read_back_valid_and_trusted(encoded: dict[str, Path], fmt: str, tmp_path: Path) -> None:
    material = make_dev_chain()
    path = tmp_path / encoded[fmt].name
    path.write_bytes(encoded[fmt].read_bytes())
    sign(path, PROVENANCE, material, "9.9.9")
    report = verify(path)
    assert report.state == "Valid"
    assert report.claim_generator == "Refrain 9.9.9"
    created = report.actions[0]
    assert created["action"] == "c2pa.created" and created["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    generation = report.generation
    assert generation["engine"] == "sketch" and generation["model_version"] == "sketch-1"
    assert generation["seed"] == 9 and generation["prompt"] == "calm folk about the harbour"
    assert generation["watermark"] == {"applied": False} and "created_at" in generation
    assert verify(path, material.root_pem).state == "Trusted"
    assert verify(path, make_dev_chain().root_pem).state != "Trusted"  # someone else's root
    assert abs(ffprobe_duration_s(path) - 14.0) < 0.1  # players still read it

    tampered = bytearray(path.read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    path.write_bytes(bytes(tampered))
    assert verify(path).state == "Invalid"


def test_private_prompt_and_watermark_status(encoded: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "song.m4a"
    path.write_bytes(encoded["m4a"].read_bytes())
    private = Provenance(
        title="x",
        engine="sketch",
        model_version="1",
        seed=1,
        prompt="secret",
        share_prompt=False,
        watermark={"applied": True, "backend": "perth"},
    )
    sign(path, private, make_dev_chain(), "1")
    report = verify(path)
    assert "prompt" not in report.generation and len(report.generation["prompt_sha256"]) == 64
    assert [a["action"] for a in report.actions] == ["c2pa.created"]
    assert report.generation["watermark"] == {"applied": True, "backend": "perth"}
    assert GENERATION_LABEL in [a["label"] for a in report.manifest["assertions"]]


def test_unsigned_file_reads_as_none(encoded: dict[str, Path]) -> None:
    assert verify(encoded["wav"]).state == "None"


def test_dev_chain_is_made_once_and_kept(tmp_path: Path) -> None:
    first = dev_signing_material(tmp_path / "c2pa")
    assert dev_signing_material(tmp_path / "c2pa") == first
    assert (tmp_path / "c2pa" / "signer.key").stat().st_mode & 0o077 == 0


def test_production_needs_a_real_key(tmp_path: Path) -> None:
    with pytest.raises(RefrainError, match="C2PA_KEY_FILE"):
        Settings(data_dir=tmp_path, environment="production").signing_material()
    assert Settings(data_dir=tmp_path, sign=False).signing_material() is None
