"""Model-backed lyricists: an OpenAI-compatible server started by the test, transformers and mlx-lm on
a tiny random model; what a model writes is validated, garbage falls back to the template lyricist,
and the fallback is recorded."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from functions.gen.lyricist import TemplateLyricist
from functions.gen.lyrics import parse_lyrics, sung_line_count
from functions.gen.lyrics_llm import (
    HttpChatBackend,
    LlmLyricist,
    LocalModelBackend,
    LyricistChain,
    LyricsRejected,
    line_range,
    validate,
)
from tests.utils.planner import tiny_planner

GOOD = """Sure! Here are your lyrics:
Title: Harbour Lights

[verse]
The boats come home beneath the evening sky
Salt on my lips and gulls that wheel and cry
[chorus]
Harbour lights, harbour lights
Guide me home tonight
[verse]
The tide rolls in and whispers what it knows
A lantern swings wherever the north wind blows
"""


class Server:
    """A tiny OpenAI-compatible chat endpoint: answers with `reply`, remembers the requests."""

    def __init__(self) -> None:
        self.reply = GOOD
        self.requests: list[dict[str, Any]] = []
        app = FastAPI()

        @app.post("/v1/chat/completions")
        def complete(body: dict[str, Any]) -> dict[str, Any]:
            self.requests.append(body)
            return {"id": "chat-1", "object": "chat.completion", "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": self.reply}}]}  # fmt: skip

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture
def server() -> Iterator[Server]:
    made = Server()
    made.thread.start()
    deadline = time.monotonic() + 20
    while not made.server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield made
    made.server.should_exit = True
    made.thread.join(timeout=10)


def test_line_counts_fit_the_duration() -> None:
    # the documented ranges (functions/gen/lyrics_llm.line_range): half the capacity up to all of it
    assert [line_range(d) for d in (30, 60, 120, 240)] == [(2, 4), (4, 9), (10, 21), (21, 43)]
    for duration in (30, 60, 120, 240):
        written = TemplateLyricist().write("a song about the sea", duration, seed=1)
        low, high = line_range(duration)
        assert low <= sung_line_count(parse_lyrics(written.lyrics)) <= high, duration


def test_validation_keeps_lyrics_and_refuses_the_rest() -> None:
    title, lyrics = validate(GOOD, 60)  # chatter before the lyrics dropped, the title kept
    assert title == "Harbour Lights" and lyrics.startswith("[verse]\nThe boats come home")
    for bad, reason in [
        ("I cannot write that.", "no section tags"),
        (GOOD.replace("[chorus]", "[drumroll]"), "unknown section tag"),
        (GOOD.replace("[chorus]", "[bridge]"), r"needs a \[verse\] and a \[chorus\]"),
        (GOOD + "\n".join(["[verse]", *["la " * 5] * 30]), "sung lines"),
        (GOOD.replace("Guide me home tonight", "word " * 30), "longer than"),
    ]:
        with pytest.raises(LyricsRejected, match=reason):
            validate(bad, 60)


def test_an_openai_compatible_server_writes_the_lyrics(server: Server) -> None:
    lyricist = LlmLyricist(HttpChatBackend(server.url, "tiny-model", api_key="k"))
    written = lyricist.write("a sea shanty about harbour lights", 60, seed=9)
    assert (written.title, written.backend) == ("Harbour Lights", "http:tiny-model")
    [request] = server.requests
    assert request["model"] == "tiny-model" and request["seed"] == 9 and request["max_tokens"] == 600
    assert request["messages"][0]["role"] == "system" and "[verse]" in request["messages"][0]["content"]
    assert "60 seconds" in request["messages"][1]["content"] and "4 to 9" in request["messages"][1]["content"]


def test_garbage_is_retried_then_the_template_lyricist_takes_over(server: Server) -> None:
    server.reply = "As an AI, here is a poem:\nroses are red"
    chain = LyricistChain([LlmLyricist(HttpChatBackend(server.url, "tiny-model"), attempts=2)])
    written = chain.write("a sea shanty", 60, seed=3)
    assert len(server.requests) == 2 and [r["seed"] for r in server.requests] == [3, 4]  # retried once
    assert written.backend == "template; passed over http:tiny-model: no section tags"
    assert written.lyrics == TemplateLyricist().write("a sea shanty", 60, 3).lyrics
    down = LyricistChain([LlmLyricist(HttpChatBackend("http://127.0.0.1:9/v1", "gone", timeout_s=2))])
    assert "passed over http:gone did not answer" in down.write("a sea shanty", 60, 3).backend


@pytest.mark.parametrize("kind", ["transformers", "mlx"])
def test_a_random_local_model_is_caught_by_the_validator(kind: str, tmp_path: Path) -> None:
    folder = tiny_planner(tmp_path / "lm")
    chain = LyricistChain([LlmLyricist(LocalModelBackend(str(folder), "cpu", kind), attempts=1)])
    written = chain.write("a sea shanty", 30, seed=5)
    assert written.backend.startswith(f"template; passed over {kind}:lm: ")
