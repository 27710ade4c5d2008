"""genmusic as a user runs it: files, lengths, loudness, vocals, determinism, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import genmusic
from tests.utils.audio import active_rms_db, ffmpeg_loudness, ffprobe_duration_s, read


def test_readme_example_writes_two_playable_songs_of_the_asked_length(summer_songs: Path) -> None:
    songs = sorted(summer_songs.glob("*.m4a"))
    assert [p.name for p in songs] == ["song-2.m4a", "song.m4a"]
    for path in songs:
        assert abs(ffprobe_duration_s(path) - 30.0) <= 1.0


def test_songs_are_mastered_to_streaming_loudness(summer_songs: Path) -> None:
    for path in summer_songs.glob("*.m4a"):
        integrated, true_peak = ffmpeg_loudness(path)
        assert abs(integrated - (-14.0)) <= 0.5, (path.name, integrated)
        assert true_peak <= -1.0, (path.name, true_peak)


def test_vocals_are_sung_and_audible(summer_songs: Path) -> None:
    vocals, _ = read(summer_songs / "stems" / "song-vocals.wav")
    band = sum(read(summer_songs / "stems" / f"song-{name}.wav")[0] for name in ("drums", "bass", "other"))
    assert active_rms_db(vocals) > -30.0
    # audible against the band: within 10 dB of it where it sings
    assert active_rms_db(vocals) > active_rms_db(band) - 10.0


def test_instrumental_has_no_vocals(instrumental_song: Path) -> None:
    vocals, _ = read(instrumental_song / "stems" / "song-vocals.wav")
    assert np.max(np.abs(vocals)) == 0.0
    integrated, true_peak = ffmpeg_loudness(instrumental_song / "song.wav")
    assert abs(integrated + 14.0) <= 0.5 and true_peak <= -1.0


def test_stems_sum_back_to_the_mix(tmp_path: Path) -> None:
    genmusic(
        "--prompt",
        "upbeat synth-pop about summer rain",
        "--duration",
        "20",
        "--seed",
        "11",
        "--variations",
        "1",
        "--stems",
        str(tmp_path / "stems"),
        "--out",
        str(tmp_path / "song.wav"),
    )
    mix, _ = read(tmp_path / "song.wav")
    stems = sum(
        read(tmp_path / "stems" / f"song-{name}.wav")[0] for name in ("vocals", "drums", "bass", "other")
    )
    error = np.sqrt(np.mean((stems - mix) ** 2)) / np.sqrt(np.mean(mix**2))
    assert error < 1e-3  # 24-bit rounding of five files; each stem carries the mix's watermark share


def test_same_seed_is_bit_identical_and_other_seeds_differ(tmp_path: Path) -> None:
    args = ["--prompt", "lofi study beat about late nights", "--duration", "12", "--variations", "1"]
    genmusic(*args, "--seed", "5", "--out", str(tmp_path / "a.wav"))
    genmusic(*args, "--seed", "5", "--out", str(tmp_path / "b.wav"))
    genmusic(*args, "--seed", "6", "--out", str(tmp_path / "c.wav"))
    # Signed files differ in their credentials (time, signature); the audio is bit-identical.
    a, b, c = (read(tmp_path / f"{name}.wav")[0] for name in "abc")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_unsigned_files_are_byte_identical(tmp_path: Path) -> None:
    args = ["--prompt", "lofi study beat", "--duration", "10", "--variations", "1", "--seed", "5"]
    unsigned = {"REFRAIN_SIGN": "false"}
    genmusic(*args, "--out", str(tmp_path / "a.m4a"), env=unsigned)
    genmusic(*args, "--out", str(tmp_path / "b.m4a"), env=unsigned)
    assert (tmp_path / "a.m4a").read_bytes() == (tmp_path / "b.m4a").read_bytes()
    assert "content credentials: none" in genmusic("verify", str(tmp_path / "a.m4a")).stdout


def test_songs_and_stems_carry_content_credentials(summer_songs: Path) -> None:
    for path in [summer_songs / "song.m4a", summer_songs / "stems" / "song-vocals.wav"]:
        report = genmusic("verify", str(path)).stdout
        assert "content credentials: Trusted" in report
        assert "c2pa.created (trainedAlgorithmicMedia)" in report
        assert "prompt: upbeat synth-pop about summer rain" in report
        assert "engine: sketch" in report


def test_private_prompt_records_only_a_hash(tmp_path: Path) -> None:
    genmusic(
        "--prompt",
        "my secret song idea",
        "--duration",
        "10",
        "--variations",
        "1",
        "--private-prompt",
        "--out",
        str(tmp_path / "s.mp3"),
    )
    report = genmusic("verify", str(tmp_path / "s.mp3")).stdout
    assert "my secret" not in report and "prompt_sha256" in report


def test_verify_refuses_a_tampered_file(tmp_path: Path) -> None:
    genmusic("--prompt", "pop", "--duration", "10", "--variations", "1", "--out", str(tmp_path / "s.wav"))
    data = bytearray((tmp_path / "s.wav").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "s.wav").write_bytes(bytes(data))
    result = genmusic("verify", str(tmp_path / "s.wav"), check=False)
    assert result.returncode == 1 and "content credentials: Invalid" in result.stdout


def test_user_lyrics_and_mp3_output(tmp_path: Path) -> None:
    lyrics = tmp_path / "lyrics.txt"
    lyrics.write_text(
        "[verse]\nI walked along the river\nThe water held the moon\n\n"
        "[chorus]\nSing it back to me\nSing it back to me\n"
    )
    result = genmusic(
        "--lyrics",
        str(lyrics),
        "--style",
        "folk, female vocals",
        "--duration",
        "24",
        "--variations",
        "1",
        "--seed",
        "2",
        "--out",
        str(tmp_path / "river.mp3"),
    )
    assert "folk" in result.stdout
    assert abs(ffprobe_duration_s(tmp_path / "river.mp3") - 24.0) <= 1.0


BAD_INPUTS = [
    (["--prompt", "", "--out", "x.m4a"], "give a prompt"),
    (["--prompt", "pop", "--duration", "5", "--out", "x.m4a"], "outside 10–240"),
    (["--prompt", "pop", "--duration", "300", "--out", "x.m4a"], "outside 10–240"),
    (["--prompt", "pop", "--engine", "suno", "--out", "x.m4a"], "known engines: acestep, sketch"),
    (["--prompt", "pop", "--out", "x.ogg"], "--out must end in"),
    (["--prompt", "pop", "--variations", "9", "--out", "x.m4a"], "variations must be 1–4"),
    (["--prompt", "pop", "--duration", "abc", "--out", "x.m4a"], "invalid float value"),
    (
        [
            "--lyrics",
            "[verse]\\n" + "\\n".join(["la la la la la la la"] * 40),
            "--duration",
            "20",
            "--out",
            "x.m4a",
        ],
        "raise the duration or shorten the lyrics",
    ),
    (["--lyrics", "[middle eight]\\nhello there", "--out", "x.m4a"], "unknown section tag"),
    (["verify", "missing.m4a"], "no such file"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_bad_input_gets_one_line_and_exit_code_2(args: list[str], message: str, tmp_path: Path) -> None:
    result = genmusic(*args, cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genmusic: error:"), result.stderr
    assert message in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_unwritable_output_directory(tmp_path: Path) -> None:
    result = genmusic("--prompt", "pop", "--out", "/proc/refrain-test/x.m4a", cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "cannot write to /proc/refrain-test" in result.stderr


def test_output_path_that_cannot_be_a_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = genmusic("--prompt", "pop", "--out", str(blocker / "x.m4a"), check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "is not a directory" in result.stderr
    assert blocker.read_text() == "not a directory"
