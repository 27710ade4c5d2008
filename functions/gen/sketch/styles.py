"""The sketch engine's vocabulary: genres as General MIDI bands, moods, tempo and voice words."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from functions.request import SongRequest, parse_key


@dataclass(frozen=True)
class Genre:
    name: str
    keywords: tuple[str, ...]
    bpm_range: tuple[int, int]
    comp: tuple[tuple[int, str], ...]  # (GM program, comping pattern) for the "other" stem
    pad: int | None  # GM program of a sustained layer in choruses
    bass: tuple[int, str]  # (GM program, bass pattern)
    lead: int  # GM program that plays the melody where nobody sings
    drums: str  # drum pattern name; "none" for no kit
    kit: int  # GM drum kit program (bank 128)
    swing_beats: float = 0.0  # delay of the off-beat eighth, in beats
    sevenths: bool = False
    minor_bias: float = 0.35  # chance of a minor key when the words don't say


GENRES: tuple[Genre, ...] = (
    Genre(
        "pop",
        ("pop", "radio", "catchy", "dance-pop"),
        (100, 122),
        ((4, "block"), (25, "strum8")),
        89,
        (33, "root8"),
        80,
        "backbeat",
        0,
    ),
    Genre(
        "synth-pop",
        ("synth-pop", "synthpop", "synthwave", "electropop", "80s", "retro", "new wave"),
        (108, 126),
        ((90, "stab"), (81, "arp16")),
        89,
        (38, "octave"),
        80,
        "four",
        24,
        minor_bias=0.5,
    ),
    Genre(
        "edm",
        ("edm", "house", "techno", "trance", "electronic", "club", "dance", "rave"),
        (122, 128),
        ((81, "stab"), (90, "pad")),
        95,
        (39, "offbeat8"),
        81,
        "four",
        25,
        minor_bias=0.6,
    ),
    Genre(
        "rock",
        ("rock", "indie", "alternative", "grunge", "garage"),
        (112, 140),
        ((29, "power"), (27, "strum8")),
        None,
        (34, "root8"),
        29,
        "rock",
        16,
        minor_bias=0.4,
    ),
    Genre(
        "punk",
        ("punk", "pop-punk", "hardcore"),
        (160, 190),
        ((30, "power"),),
        None,
        (34, "root8"),
        30,
        "punk",
        16,
        minor_bias=0.3,
    ),
    Genre(
        "metal",
        ("metal", "heavy", "thrash", "djent"),
        (140, 176),
        ((30, "power"), (30, "power")),
        None,
        (34, "root8"),
        30,
        "metal",
        16,
        minor_bias=0.9,
    ),
    Genre(
        "hip-hop",
        ("hip-hop", "hip hop", "hiphop", "rap", "boom bap", "trap", "drill"),
        (84, 96),
        ((4, "block"),),
        88,
        (38, "sub"),
        80,
        "boombap",
        25,
        swing_beats=0.08,
        sevenths=True,
        minor_bias=0.7,
    ),
    Genre(
        "lofi",
        ("lofi", "lo-fi", "chillhop", "study", "chill"),
        (72, 86),
        ((4, "broken"),),
        89,
        (32, "root4"),
        11,
        "boombap",
        8,
        swing_beats=0.12,
        sevenths=True,
        minor_bias=0.5,
    ),
    Genre(
        "r&b",
        ("r&b", "rnb", "soul", "neo-soul", "motown"),
        (72, 94),
        ((4, "block"), (27, "offbeat")),
        89,
        (33, "synco"),
        65,
        "boombap",
        0,
        swing_beats=0.06,
        sevenths=True,
        minor_bias=0.5,
    ),
    Genre(
        "funk",
        ("funk", "disco", "groovy", "boogie"),
        (104, 120),
        ((28, "stab"), (61, "stab")),
        None,
        (36, "synco"),
        61,
        "four",
        0,
        sevenths=True,
        minor_bias=0.4,
    ),
    Genre(
        "jazz",
        ("jazz", "swing", "bebop", "big band", "lounge"),
        (120, 160),
        ((0, "swingcomp"),),
        None,
        (32, "walking"),
        65,
        "jazz",
        32,
        swing_beats=0.16,
        sevenths=True,
        minor_bias=0.35,
    ),
    Genre(
        "bossa nova",
        ("bossa", "bossa nova", "samba", "latin", "brazilian"),
        (120, 140),
        ((24, "bossa"),),
        None,
        (32, "root5"),
        73,
        "bossa",
        0,
        sevenths=True,
        minor_bias=0.4,
    ),
    Genre(
        "reggae",
        ("reggae", "ska", "dub", "dancehall"),
        (72, 90),
        ((16, "offbeat"), (26, "offbeat")),
        None,
        (33, "reggae"),
        16,
        "onedrop",
        0,
        minor_bias=0.4,
    ),
    Genre(
        "blues",
        ("blues", "shuffle", "delta"),
        (76, 100),
        ((26, "offbeat"), (0, "block")),
        None,
        (33, "walking"),
        26,
        "shuffle",
        0,
        swing_beats=0.16,
        sevenths=True,
        minor_bias=0.3,
    ),
    Genre(
        "country",
        ("country", "americana", "bluegrass", "western", "honky"),
        (100, 128),
        ((25, "strum8"), (105, "arp8")),
        110,
        (32, "root5"),
        110,
        "folk",
        0,
        minor_bias=0.15,
    ),
    Genre(
        "folk",
        ("folk", "acoustic", "singer-songwriter", "campfire", "indie folk"),
        (88, 116),
        ((25, "strum8"),),
        48,
        (32, "root4"),
        73,
        "folk",
        8,
        minor_bias=0.35,
    ),
    Genre(
        "ballad",
        ("ballad", "piano", "love song", "slow", "torch"),
        (64, 80),
        ((0, "arp8"),),
        48,
        (32, "pulse"),
        48,
        "ballad",
        0,
        minor_bias=0.45,
    ),
    Genre(
        "cinematic",
        ("cinematic", "orchestral", "epic", "film", "score", "classical", "strings"),
        (70, 96),
        ((48, "pad"), (46, "arp8")),
        52,
        (42, "pulse"),
        60,
        "ballad",
        48,
        minor_bias=0.6,
    ),
    Genre(
        "ambient",
        ("ambient", "drone", "meditation", "atmospheric", "dreamy", "ethereal"),
        (64, 84),
        ((94, "pad"), (11, "arp8")),
        91,
        (38, "pulse"),
        73,
        "none",
        0,
        minor_bias=0.5,
    ),
)
GENRE_NAMES = tuple(g.name for g in GENRES)

_MINOR_WORDS = (
    "sad",
    "dark",
    "melanchol",
    "rain",
    "lonely",
    "moody",
    "minor",
    "haunting",
    "heartbreak",
    "blue",
    "night",
    "grief",
    "tears",
    "cold",
    "storm",
    "broken",
    "somber",
    "sombre",
)
_MAJOR_WORDS = (
    "happy",
    "upbeat",
    "sunny",
    "summer",
    "joy",
    "bright",
    "uplifting",
    "major",
    "cheerful",
    "party",
    "love",
    "celebrat",
    "fun",
    "feel-good",
    "hopeful",
)
_FAST_WORDS = ("upbeat", "fast", "energetic", "driving", "party", "hype", "high energy", "dance")
_SLOW_WORDS = ("slow", "chill", "mellow", "calm", "relaxed", "sleepy", "laid-back", "lazy", "gentle")
_FEMALE_RE = re.compile(r"\b(female|woman|women|girl|girls|soprano|alto|diva|she|her)\b")
_MALE_RE = re.compile(r"\b(male|man|men|boy|boys|baritone|tenor|he|his)\b")
_BPM_RE = re.compile(r"(\d{2,3})\s*bpm", re.IGNORECASE)


@dataclass(frozen=True)
class StylePlan:
    genre: Genre
    bpm: float
    tonic_pc: int
    mode: str  # "major" | "minor"
    beats_per_bar: int
    vocal_gender: str  # "female" | "male"
    energy: float  # 0–1, scales velocities and density


def _text_of(request: SongRequest) -> str:
    return " ".join([request.prompt, *request.style_tags]).lower()


def _has(text: str, words: tuple[str, ...]) -> bool:
    return any(w in text for w in words)


def pick_genre(text: str, negative: list[str], rng: np.random.Generator) -> Genre:
    """The genre whose keywords appear earliest and longest in `text`; a seeded pick when none do."""
    banned = " ".join(negative).lower()
    scored = []
    for genre in GENRES:
        if genre.name in banned:
            continue
        for word in genre.keywords:
            match = re.search(rf"(?<![a-z]){re.escape(word)}(?![a-z])", text)
            if match:
                scored.append((match.start(), -len(word), genre.name, genre))
    if scored:
        return min(scored)[3]
    allowed = [g for g in GENRES if g.name not in banned and g.name in ("pop", "folk", "synth-pop", "rock")]
    return allowed[int(rng.integers(len(allowed)))] if allowed else GENRES[0]


def plan_style(request: SongRequest, rng: np.random.Generator) -> StylePlan:
    """Turn the request's words and numbers into a band, tempo, key and voice."""
    text = _text_of(request)
    genre = pick_genre(text, request.negative_tags, rng)

    low, high = genre.bpm_range
    if request.bpm is not None:
        bpm = float(request.bpm)
    elif match := _BPM_RE.search(text):
        bpm = float(min(240, max(40, int(match.group(1)))))
    else:
        position = float(rng.uniform(0.25, 0.75))
        if _has(text, _FAST_WORDS):
            position = float(rng.uniform(0.7, 1.0))
        elif _has(text, _SLOW_WORDS):
            position = float(rng.uniform(0.0, 0.3))
        bpm = float(round(low + (high - low) * position))

    if request.key:
        tonic_pc, mode = parse_key(request.key)
    else:
        tonic_pc = int(rng.integers(12))
        minor = _has(text, _MINOR_WORDS)
        major = _has(text, _MAJOR_WORDS)
        if minor == major:
            mode = "minor" if rng.random() < genre.minor_bias else "major"
        else:
            mode = "minor" if minor else "major"

    if _FEMALE_RE.search(text):
        gender = "female"
    elif _MALE_RE.search(text):
        gender = "male"
    else:
        gender = "female" if rng.random() < 0.5 else "male"

    energy = 0.6
    if _has(text, _FAST_WORDS):
        energy = 0.85
    elif _has(text, _SLOW_WORDS):
        energy = 0.4
    return StylePlan(genre, bpm, tonic_pc, mode, request.beats_per_bar, gender, energy)
