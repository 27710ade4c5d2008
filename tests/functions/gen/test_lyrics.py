"""Lyrics parsing and the template lyricist's fit to the duration."""

from __future__ import annotations

import pytest

from functions.errors import InvalidRequest
from functions.gen.lyricist import TemplateLyricist, max_lines_for, topic_of
from functions.gen.lyrics import count_syllables, parse_lyrics, sung_line_count


def test_tags_and_aliases() -> None:
    sections = parse_lyrics(
        "[Intro]\n[Verse 1]\nhello there\n\n[Hook]\nsing it\n[Pre Chorus]\nup we go\n[outro]"
    )
    assert [s.kind for s in sections] == ["intro", "verse", "chorus", "pre-chorus", "outro"]
    assert sections[1].lines == ("hello there",)


def test_untagged_paragraphs_become_verses_and_repeated_ones_choruses() -> None:
    text = "one two three\nfour five\n\nla la la\n\nsix seven\n\nla la la"
    assert [s.kind for s in parse_lyrics(text)] == ["verse", "chorus", "verse", "chorus"]


def test_unknown_tag_names_the_known_ones() -> None:
    with pytest.raises(InvalidRequest, match=r"\[verse\]"):
        parse_lyrics("[middle eight]\nhello")


@pytest.mark.parametrize(
    ("word", "count"),
    [("rain", 1), ("summer", 2), ("beautiful", 3), ("fire", 1), ("dancing", 2), ("little", 2), ("walked", 1)],
)
def test_syllables(word: str, count: int) -> None:
    assert count_syllables(word) == count


@pytest.mark.parametrize("duration", [10, 30, 60, 120, 180, 240])
def test_template_lyrics_fit_the_duration(duration: int) -> None:
    written = TemplateLyricist().write("sad piano ballad about the sea", duration, seed=1)
    lines = sung_line_count(parse_lyrics(written.lyrics))
    assert 2 <= lines <= max_lines_for(duration)
    assert written.title == "The Sea"


def test_topic() -> None:
    assert topic_of("upbeat synth-pop about summer rain") == "summer rain"
    assert topic_of("dreamy lofi with rain sounds") == "dreamy rain sounds"
    assert topic_of("late-night jazz club about city lights, male vocals") == "city lights"
    assert topic_of("a song about the sea with female vocals") == "the sea"
