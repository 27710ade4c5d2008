"""Lyricists turn a description into a title and structured lyrics; the template one needs no model.

Fitting rule (shared by every lyricist): a sung line takes 3–5.4 s (two bars above ~89 bpm in 4/4,
one bar below), and about 6 s go to intro and ending, so a song of D seconds holds at most
floor((D - 6) / 5.4) lines; the template lyricist picks the largest standard form within that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from functions.gen.lyrics import Section, format_lyrics

SECONDS_PER_LINE_MAX = 5.4
INTRO_OUTRO_S = 6.0

# (kind, lines) forms, smallest first; a chorus is written once and repeated verbatim.
_VERSE_CHORUS = (("verse", 4), ("chorus", 4))
_BUILD = (("verse", 4), ("pre-chorus", 2), ("chorus", 4))
_BRIDGE = (("bridge", 4), ("chorus", 4))
FORMS: tuple[tuple[tuple[str, int], ...], ...] = (
    (("verse", 1), ("chorus", 1)),  # fits 10 s at any tempo the sketch engine plays
    (("verse", 2), ("chorus", 2)),
    (("verse", 4), ("chorus", 2)),
    _VERSE_CHORUS,
    _BUILD,
    (("verse", 2), ("chorus", 4), ("verse", 2), ("chorus", 4)),
    _VERSE_CHORUS * 2,
    _BUILD * 2,
    _BUILD * 2 + _BRIDGE,
    _BUILD * 2 + _BRIDGE + (("outro", 2),),
    _BUILD * 2 + (("verse", 4),) + _BRIDGE + (("outro", 2),),
)

_TEMPLATES: dict[str, tuple[str, ...]] = {
    "verse": (
        "Walking through {image} tonight",
        "Every step brings me back to {topic}",
        "I remember {image} and you",
        "Whispers in {image} calling me home",
        "We were young beneath {image}",
        "Counting hours until {topic}",
        "Holding on to {image} again",
        "Shadows dancing on {image}",
        "Pages turning in the wind",
        "Every color feels brand new",
        "I can hear {image} in my sleep",
        "Somewhere out past {image}",
        "Writing your name on {image}",
        "Waiting on {topic} to come",
    ),
    "pre-chorus": (
        "Can you feel it rising now",
        "Something's changing in the air",
        "Hold your breath and count to three",
        "Here it comes, here it comes",
        "Don't let go, don't look down",
    ),
    "chorus": (
        "Oh {topic}, don't fade away",
        "{Topic}, you light me up",
        "We sing about {topic} all night long",
        "Hold me close in {topic}",
        "This is our {topic}, our song",
        "And I'm alive in {topic}",
        "Take me higher, {topic}",
        "Never let {topic} go",
    ),
    "bridge": (
        "If the world stops turning I will stay",
        "Maybe we were meant to find {topic}",
        "All the noise is falling far behind",
        "Even when the lights go out",
        "I will carry {image} with me",
    ),
    "outro": ("{Topic}, {topic}", "Oh, {topic}, oh", "Still dreaming of {topic}"),
}
_IMAGES = (
    "the city lights",
    "an open road",
    "the morning sun",
    "a silver sky",
    "the midnight train",
    "the ocean wide",
    "a paper moon",
    "the summer air",
    "the falling rain",
    "a burning flame",
    "the quiet street",
    "the northern stars",
)
_STYLE_WORDS = re.compile(
    r"\b(song|track|tune|music|vocals?|female|male|voice|singer|with|and|a|an|the|in|of|style|beat|"
    r"bpm|\d+|upbeat|slow|fast|chill|sad|happy|dark|bright|mellow|energetic|instrumental|feat|"
    r"pop|synth-pop|synthpop|rock|jazz|folk|lofi|lo-fi|hip-hop|rap|edm|house|techno|ballad|country|"
    r"blues|funk|disco|reggae|metal|punk|ambient|cinematic|orchestral|acoustic|electronic|indie|soul|r&b)\b",
    re.IGNORECASE,
)
_ABOUT = re.compile(r"\babout\s+(.+)$", re.IGNORECASE)


@dataclass(frozen=True)
class WrittenLyrics:
    title: str
    lyrics: str
    backend: str  # which lyricist wrote them (recorded with the song)


class Lyricist(Protocol):
    @property
    def name(self) -> str: ...

    def write(self, description: str, duration_s: float, seed: int) -> WrittenLyrics: ...


def max_lines_for(duration_s: float) -> int:
    return max(2, int((duration_s - INTRO_OUTRO_S) // SECONDS_PER_LINE_MAX))


def topic_of(description: str) -> str:
    """'upbeat synth-pop about summer rain' -> 'summer rain'."""
    about = _ABOUT.search(description.strip())
    # "… about city lights, male vocals": the subject ends at the first comma or full stop
    text = re.split(r"[,.;:!?]| with ", about.group(1))[0] if about else _STYLE_WORDS.sub(" ", description)
    text = re.sub(r"[^A-Za-z' ]", " ", text)
    topic = " ".join(text.split()[:4]).lower()
    return topic or "tonight"


class TemplateLyricist:
    """Deterministic lyrics from templates: always available, never a network call."""

    name = "template"

    def write(self, description: str, duration_s: float, seed: int) -> WrittenLyrics:
        rng = np.random.default_rng([seed, 7])
        topic = topic_of(description)
        capacity = max_lines_for(duration_s)
        form = max(
            (f for f in FORMS if sum(n for _, n in f) <= capacity),
            key=lambda f: sum(n for _, n in f),
            default=FORMS[0],
        )
        written: dict[str, tuple[str, ...]] = {}
        used: set[str] = set()
        sections = []
        for kind, lines in form:
            if kind == "chorus" and kind in written:
                sections.append(Section(kind, written[kind][:lines]))
                continue
            pool = [t for t in _TEMPLATES[kind] if t not in used]
            if len(pool) < lines:
                pool = list(_TEMPLATES[kind])
            chosen = [pool[int(i)] for i in rng.permutation(len(pool))[:lines]]
            used.update(chosen)
            text = tuple(
                t.format(
                    topic=topic, Topic=topic.capitalize(), image=_IMAGES[int(rng.integers(len(_IMAGES)))]
                )
                for t in chosen
            )
            written[kind] = text
            sections.append(Section(kind, text))
        title = topic.title() if topic != "tonight" else "Tonight"
        return WrittenLyrics(title, format_lyrics(sections), self.name)
