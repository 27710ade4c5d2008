"""The sketch engine: genres sound different, choruses repeat, lengths are exact, vocals follow the melody."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from functions.errors import InvalidRequest
from functions.gen.sketch import SketchEngine
from functions.gen.sketch.compose import Composer
from functions.gen.sketch.styles import plan_style
from functions.request import build_request


@pytest.fixture(scope="module")
def engine() -> SketchEngine:
    engine = SketchEngine()
    engine.load()
    return engine


def _spectrum(audio: np.ndarray) -> np.ndarray:
    mono = audio.mean(axis=0)
    bands = np.abs(np.fft.rfft(mono))
    edges = np.geomspace(40, 16000, 25) / 44100 * len(mono) * 2
    energy = np.array([bands[int(a) : int(b)].sum() for a, b in itertools.pairwise(edges)])
    return energy / energy.sum()


def test_two_genres_have_different_bands_tempi_and_sound(engine: SketchEngine) -> None:
    metal = engine.generate(
        build_request(prompt="heavy metal", instrumental=True, duration_s=12, seed=1, variations=1),
        on_progress=lambda *_: None,
    )[0]
    ambient = engine.generate(
        build_request(prompt="ambient meditation", instrumental=True, duration_s=12, seed=1, variations=1),
        on_progress=lambda *_: None,
    )[0]
    assert metal.metadata["genre"] == "metal" and ambient.metadata["genre"] == "ambient"
    assert metal.metadata["bpm"] > ambient.metadata["bpm"] + 40
    # ambient has no drum kit; metal does
    assert np.abs(ambient.stems["drums"]).max() == 0 and np.abs(metal.stems["drums"]).max() > 0.01
    assert np.abs(_spectrum(metal.audio) - _spectrum(ambient.audio)).sum() > 0.3


def test_length_is_exact_and_variations_differ(engine: SketchEngine) -> None:
    songs = engine.generate(
        build_request(
            prompt="pop", lyrics="[verse]\nhello\n[chorus]\nyeah", duration_s=13.5, seed=3, variations=2
        ),
        on_progress=lambda *_: None,
    )
    assert [s.audio.shape for s in songs] == [(2, int(13.5 * 44100))] * 2
    assert [s.seed for s in songs] == [3, 4]
    assert not np.array_equal(songs[0].audio, songs[1].audio)
    assert all(s.audio.dtype == np.float32 for s in songs)


def test_chorus_melody_repeats_and_notes_follow_syllables() -> None:
    request = build_request(
        prompt="pop",
        duration_s=90,
        seed=2,
        variations=1,
        lyrics="[verse]\nwe ran along the shore\n[chorus]\nhold on to the light\n"
        "[verse]\nthe night was cold and long\n[chorus]\nhold on to the light",
    )
    style = plan_style(request, np.random.default_rng(0))
    from functions.gen.lyrics import parse_lyrics

    score = Composer(style, 2).compose(parse_lyrics(request.lyrics), 90, sung=True)
    choruses = [line for line in score.lines if line.text == "hold on to the light"]
    assert len(choruses) >= 2
    first, second = choruses[0], choruses[1]
    assert [p for _, _, p in first.notes] == [p for _, _, p in second.notes]  # same tune
    assert len(first.notes) == sum(first.syllables)  # one note per syllable


def test_vocal_pitch_follows_the_melody(engine: SketchEngine) -> None:
    """The sung stem's pitch, measured independently with WORLD's harvest, sits on the melody's notes."""
    import pyworld
    from scipy.signal import resample_poly

    request = build_request(
        prompt="folk, female vocals",
        lyrics="[verse]\nla la la la la la la la",
        duration_s=12,
        seed=5,
        variations=1,
        bpm=90,
    )
    song = engine.generate(request, on_progress=lambda *_: None)[0]
    assert song.metadata["vocal"] == "female"
    vocal = np.ascontiguousarray(resample_poly(song.stems["vocals"].mean(axis=0).astype(np.float64), 1, 2))
    f0, t = pyworld.harvest(vocal, 22050, f0_floor=100, f0_ceil=900, frame_period=10)
    notes = [n for line in engine._score(request, 5).lines for n in line.notes]
    assert len(notes) == 8
    hits = 0
    for onset, duration, pitch in notes:
        middle = (t > onset + 0.3 * duration) & (t < onset + 0.7 * duration) & (f0 > 0)
        if middle.any():
            sung = 69 + 12 * np.log2(np.median(f0[middle]) / 440)
            hits += abs(sung - pitch) < 0.75
    assert hits >= 0.75 * len(notes)


def test_lyrics_too_long_for_duration(engine: SketchEngine) -> None:
    lyrics = "[verse]\n" + "\n".join(["the long road home again tonight"] * 30)
    with pytest.raises(InvalidRequest, match="shorten the lyrics"):
        engine.check(build_request(prompt="pop", lyrics=lyrics, duration_s=20))
