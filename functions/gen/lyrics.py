"""Structured lyrics: section tags, lines, words and syllables."""

from __future__ import annotations

import re
from dataclasses import dataclass

from functions.errors import InvalidRequest

SECTION_KINDS = ("intro", "verse", "pre-chorus", "chorus", "bridge", "outro", "instrumental")
_ALIASES = {
    "hook": "chorus",
    "refrain": "chorus",
    "prechorus": "pre-chorus",
    "pre chorus": "pre-chorus",
    "post-chorus": "chorus",
    "solo": "instrumental",
    "break": "instrumental",
    "interlude": "instrumental",
    "drop": "instrumental",
    "inst": "instrumental",
    "end": "outro",
}
_TAG_RE = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_WORD_RE = re.compile(r"[A-Za-zÀ-ÿ']+|\d+")
_VOWEL_GROUP_RE = re.compile(r"[aeiouy]+")


@dataclass(frozen=True)
class Section:
    kind: str  # one of SECTION_KINDS
    lines: tuple[str, ...]


def section_kind(tag: str) -> str:
    """'[Verse 2]' -> 'verse', '[Hook]' -> 'chorus'; unknown tags raise InvalidRequest."""
    name = re.sub(r"[:(].*$", "", tag.strip().lower()).strip()
    name = re.sub(r"\s*\d+$", "", name).strip()
    name = _ALIASES.get(name, name)
    if name not in SECTION_KINDS:
        known = " ".join(f"[{k}]" for k in SECTION_KINDS)
        raise InvalidRequest("lyrics", tag, f"unknown section tag [{tag}]; use {known}")
    return name


def parse_lyrics(text: str) -> list[Section]:
    """Split lyrics into sections. Untagged paragraphs are verses, or choruses when they repeat."""
    sections: list[tuple[str | None, list[str]]] = []
    current: tuple[str | None, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        tag = _TAG_RE.match(line)
        if tag:
            current = (section_kind(tag.group(1)), [])
            sections.append(current)
        elif not line:
            if current is not None and current[0] is None and current[1]:
                current = None  # a blank line ends an untagged paragraph
        else:
            if current is None:
                current = (None, [])
                sections.append(current)
            if words(line):
                current[1].append(line)
    paragraphs = [tuple(lines) for kind, lines in sections if kind is None]
    result = []
    for kind, lines in sections:
        if kind is None:
            kind = "chorus" if paragraphs.count(tuple(lines)) > 1 else "verse"
        if lines or kind in ("intro", "outro", "instrumental"):
            result.append(Section(kind, tuple(lines)))
    return result


def words(line: str) -> list[str]:
    return _WORD_RE.findall(line)


def count_syllables(word: str) -> int:
    """English syllable estimate (vowel groups, silent e); good enough to place one note per syllable."""
    w = word.lower().strip("'")
    if w.isdigit():
        return max(1, len(w))
    if not w:
        return 0
    groups = len(_VOWEL_GROUP_RE.findall(w))
    if w.endswith("e") and not w.endswith(("le", "ee", "ye")) and groups > 1:
        groups -= 1
    if w.endswith("ed") and len(w) > 3 and w[-3] not in "td" and groups > 1:
        groups -= 1
    return max(1, groups)


def syllables_per_word(line: str) -> list[int]:
    return [count_syllables(w) for w in words(line)]


def sung_line_count(sections: list[Section]) -> int:
    return sum(len(s.lines) for s in sections if s.kind != "instrumental")


def format_lyrics(sections: list[Section]) -> str:
    """Sections back to tagged text, the form stored with a song."""
    blocks = []
    for s in sections:
        blocks.append("\n".join([f"[{s.kind}]", *s.lines]))
    return "\n\n".join(blocks)
