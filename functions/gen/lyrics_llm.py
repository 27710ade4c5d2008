"""Lyricists backed by language models, validated, with the template lyricist as the last resort.

Backends: an OpenAI-compatible chat endpoint (Ollama, vLLM, llama.cpp's server, a hosted API), or a
local model folder through transformers (CUDA / CPU) or mlx-lm (Apple silicon). Whatever a model
writes is validated before it is used: known section tags only, every line inside a section, line
counts fitted to the duration (see `line_range`), no chatter around it (a "Title:" line and text
outside the lyrics are stripped, anything else is refused). A refused answer is retried with another
seed a bounded number of times, then the next lyricist in the chain is asked; the template lyricist
never fails. The result records which lyricist wrote it and why earlier ones were passed over.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from functions.errors import InvalidRequest, RefrainError
from functions.gen.lyricist import Lyricist, TemplateLyricist, WrittenLyrics, max_lines_for
from functions.gen.lyrics import format_lyrics, parse_lyrics, sung_line_count

MAX_LINE_CHARS = 90
_TAG_LINE = re.compile(r"^\s*\[[^\]]+\]\s*$")
_TITLE_LINE = re.compile(r"^\s*(?:#+\s*)?title\s*[:\-]\s*(.+?)\s*$", re.IGNORECASE)


class LyricsRejected(RefrainError):
    """A model's answer is not usable lyrics (the reason says why)."""


def line_range(duration_s: float) -> tuple[int, int]:
    """Sung lines a song of `duration_s` should hold: at most the fitting rule's capacity
    (lyricist.py: (D - 6) / 5.4 s a line), at least half of it, and never fewer than 2."""
    most = max_lines_for(duration_s)
    return max(2, most // 2), most


def messages_for(description: str, duration_s: float) -> list[dict[str, str]]:
    low, high = line_range(duration_s)
    system = (
        "You write song lyrics. Answer with the lyrics only: first a line 'Title: <title>', then "
        "sections, each starting with one of the tags [intro] [verse] [pre-chorus] [chorus] [bridge] "
        "[outro] on its own line, followed by its lines. No explanations, no notes, no markdown."
    )
    user = (
        f"Write lyrics for this song: {description.strip()}\n"
        f"It lasts {round(duration_s)} seconds: use {low} to {high} sung lines in all, with at least "
        "one [verse] and one [chorus]. Keep each line under 12 words."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def validate(text: str, duration_s: float) -> tuple[str, str]:
    """(title, lyrics) from a model's answer, or LyricsRejected."""
    lines = text.replace("\r", "").strip().strip("`").splitlines()
    title = ""
    tagged = [i for i, line in enumerate(lines) if _TAG_LINE.match(line)]
    if not tagged:
        raise LyricsRejected("no section tags")
    for line in lines[: tagged[0]]:  # before the lyrics: a title line, or chatter (dropped)
        if match := _TITLE_LINE.match(line):
            title = match.group(1).strip("\"'* ")
    body = lines[tagged[0] :]
    while body and not body[-1].strip():
        body.pop()
    try:
        sections = parse_lyrics("\n".join(body))
    except InvalidRequest as exc:
        raise LyricsRejected(exc.message) from None
    if any(not section.lines for section in sections if section.kind != "instrumental"):
        raise LyricsRejected("a section has no lines")
    kinds = {section.kind for section in sections}
    if not {"verse", "chorus"} <= kinds:
        raise LyricsRejected("needs a [verse] and a [chorus]")
    long = [line for s in sections for line in s.lines if len(line) > MAX_LINE_CHARS]
    if long:
        raise LyricsRejected(f"a line is longer than {MAX_LINE_CHARS} characters: {long[0][:40]!r}…")
    sung = sung_line_count(sections)
    low, high = line_range(duration_s)
    if not low <= sung <= high:
        raise LyricsRejected(f"{sung} sung lines; a {round(duration_s)} s song takes {low}–{high}")
    return title[:120], format_lyrics(sections)


class TextBackend(Protocol):
    @property
    def name(self) -> str: ...

    def complete(self, messages: list[dict[str, str]], seed: int, max_tokens: int) -> str: ...


@dataclass
class HttpChatBackend:
    """An OpenAI-compatible `POST {base_url}/chat/completions`."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 60.0
    temperature: float = 0.8

    @property
    def name(self) -> str:
        return f"http:{self.model}"

    def complete(self, messages: list[dict[str, str]], seed: int, max_tokens: int) -> str:
        import requests

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "seed": seed,
            "temperature": self.temperature,
            "max_tokens": max_tokens,
        }
        url = f"{self.base_url.rstrip('/')}/chat/completions"
        try:
            answer = requests.post(url, json=body, headers=headers, timeout=self.timeout_s)
            answer.raise_for_status()
            return str(answer.json()["choices"][0]["message"]["content"] or "")
        except (requests.RequestException, KeyError, IndexError, ValueError) as exc:
            raise LyricsRejected(f"{self.name} did not answer: {type(exc).__name__}") from None


@dataclass
class LocalModelBackend:
    """A model folder through the planner's backends (transformers, or mlx-lm on Apple silicon)."""

    folder: str
    device: str = "cpu"
    kind: str | None = None  # "mlx" | "transformers"; None: mlx on mps, transformers elsewhere
    _backend: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self._kind()}:{self.folder.rstrip('/').split('/')[-1]}"

    def _kind(self) -> str:
        return self.kind or ("mlx" if self.device == "mps" else "transformers")

    def complete(self, messages: list[dict[str, str]], seed: int, max_tokens: int) -> str:
        from pathlib import Path

        from functions.gen.acestep.planner import MlxBackend, Rule, TransformersBackend

        if self._backend is None:
            folder = Path(self.folder)
            self._backend = (
                MlxBackend(folder) if self._kind() == "mlx" else TransformersBackend(folder, self.device)
            )
        prompt = self._backend.render(messages, add_generation_prompt=True)
        stops = [
            i for i in (self._backend.vocab().get("<|im_end|>"), self._backend.eos_id()) if i is not None
        ]
        free: dict[str, Rule] = {"any": (None, frozenset())}
        return str(self._backend.generate(prompt, lambda generated: "any", free, max_tokens, seed, stops))


@dataclass
class LlmLyricist:
    backend: TextBackend
    attempts: int = 2

    @property
    def name(self) -> str:
        return self.backend.name

    def write(self, description: str, duration_s: float, seed: int) -> WrittenLyrics:
        reason = "no attempt"
        for attempt in range(self.attempts):
            text = self.backend.complete(messages_for(description, duration_s), seed + attempt, 600)
            try:
                title, lyrics = validate(text, duration_s)
            except LyricsRejected as exc:
                reason = str(exc)
                continue
            return WrittenLyrics(title or description.strip()[:60].title(), lyrics, self.name)
        raise LyricsRejected(f"{self.name}: {reason}")


class LyricistChain:
    """Asks each lyricist in turn; the template lyricist closes every chain."""

    def __init__(self, lyricists: Sequence[Lyricist]) -> None:
        # nothing after the template lyricist would ever be asked: it ends the chain, once
        self.lyricists = [
            *(ly for ly in lyricists if not isinstance(ly, TemplateLyricist)),
            TemplateLyricist(),
        ]
        self.name = self.lyricists[0].name

    def write(self, description: str, duration_s: float, seed: int) -> WrittenLyrics:
        passed: list[str] = []
        for lyricist in self.lyricists:
            try:
                written = lyricist.write(description, duration_s, seed)
            except LyricsRejected as exc:
                passed.append(str(exc))
                continue
            note = "".join(f"; passed over {p}" for p in passed)
            return WrittenLyrics(written.title, written.lyrics, written.backend + note)
        raise AssertionError("the template lyricist never fails")
