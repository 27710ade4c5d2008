"""Speech with word timings from libespeak-ng (through ctypes: the CLI cannot report where words start)."""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from functions.errors import MissingTool

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_PARAM_RATE = 1
_LIBRARY_CANDIDATES = (
    "libespeak-ng.so.1",
    "/opt/homebrew/lib/libespeak-ng.dylib",
    "/usr/local/lib/libespeak-ng.dylib",
)


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character index
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Speech:
    audio: np.ndarray  # float32 mono
    sample_rate_hz: int
    word_starts: tuple[tuple[int, int], ...]  # (character offset in the text, sample index)


class Espeak:
    """One process-wide libespeak-ng; synthesis is serialised because the library keeps global state."""

    _instance: Espeak | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self._lib = self._load()
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._words: list[tuple[int, int]] = []
        self._callback = _Callback(self._on_audio)  # kept referenced: C holds the pointer
        self.sample_rate_hz = int(self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, 0))
        if self.sample_rate_hz <= 0:
            raise MissingTool("espeak-ng could not initialise (is espeak-ng-data installed?)")
        self._lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def shared(cls) -> Espeak:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @staticmethod
    def _load() -> ctypes.CDLL:
        names = [ctypes.util.find_library("espeak-ng"), *_LIBRARY_CANDIDATES]
        for name in names:
            if name and (not name.startswith("/") or Path(name).exists()):
                try:
                    return ctypes.CDLL(name)
                except OSError:
                    continue
        raise MissingTool(
            "libespeak-ng is not installed; run scripts/install.sh (apt: espeak-ng, brew: espeak-ng)"
        )

    def _on_audio(self, wav: ctypes._Pointer, count: int, events: ctypes._Pointer) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).astype(np.float32) / 32768.0)
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_WORD:
                self._words.append((events[i].text_position - 1, events[i].sample))
            i += 1
        return 0

    def speak(self, text: str, voice: str, words_per_minute: int = 170) -> Speech:
        data = text.encode("utf-8") + b"\0"
        with self._lock:
            self._chunks, self._words = [], []
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise MissingTool(f"espeak-ng has no voice {voice!r}")
            self._lib.espeak_SetParameter(_PARAM_RATE, words_per_minute, 0)
            self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            self._lib.espeak_Synchronize()
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
            # Character offsets are in bytes of UTF-8; map them back to str offsets.
            byte_to_char = {len(text[:i].encode("utf-8")): i for i in range(len(text) + 1)}
            words = tuple((byte_to_char.get(pos, pos), sample) for pos, sample in self._words)
        return Speech(audio, self.sample_rate_hz, words)
