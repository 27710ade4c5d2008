"""Band stems: score parts -> MIDI files (mido) -> audio (the FluidSynth program, one process per stem)."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import mido
import numpy as np
import soxr

from functions.errors import MissingTool
from functions.gen.sketch.compose import Part

FLUIDSYNTH_GAIN = 0.5
# FluidSynth's cost is per voice and sample: rendering at 32 kHz (16 kHz bandwidth) and resampling
# costs 0.6x the CPU of a 44.1 kHz render (3.9 s vs 7.6 s for a 3-minute band on one EPYC core).
RENDER_RATE_HZ = 32000
TICKS_PER_BEAT = 960
_SECONDS_PER_TICK = 0.5 / TICKS_PER_BEAT  # the file keeps MIDI's default 120 bpm; note times are in seconds
_DRUM_CHANNEL = 9


def write_midi(parts: list[Part], path: Path) -> None:
    """One track per part. Written with mido directly: pretty_midi's writer took 0.7 s for a 3-minute band."""
    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    channels = iter(c for c in range(16) if c != _DRUM_CHANNEL)
    for part in parts:
        channel = _DRUM_CHANNEL if part.is_drum else next(channels)
        events: list[tuple[int, int, int, int]] = []  # tick, order (offs first), note, velocity
        for note in part.notes:
            events.append((round(note.start_s / _SECONDS_PER_TICK), 1, note.pitch, note.velocity))
            events.append((round(note.end_s / _SECONDS_PER_TICK), 0, note.pitch, 0))
        events.sort()
        track = mido.MidiTrack(
            [
                mido.MetaMessage("track_name", name=part.name, time=0),
                mido.Message("program_change", channel=channel, program=part.program, time=0),
            ]
        )
        now = 0
        for tick, is_on, pitch, velocity in events:
            kind = "note_on" if is_on else "note_off"
            track.append(mido.Message(kind, channel=channel, note=pitch, velocity=velocity, time=tick - now))
            now = tick
        midi.tracks.append(track)
    midi.save(str(path))


class StemRender:
    """A FluidSynth process rendering one stem; a thread reads and resamples it as soon as it is done."""

    def __init__(
        self,
        fluidsynth: str,
        soundfont: Path,
        midi_path: Path,
        sample_rate_hz: int,
        n_samples: int,
        reverb: bool = True,
    ) -> None:
        self.raw_path = midi_path.with_suffix(".f32")
        self.sample_rate_hz = sample_rate_hz
        self.n_samples = n_samples
        # -z 4096: write the render in 4096-frame periods, not 64 (91k write calls per stem -> 1.4k;
        # event timing is unchanged: the player runs on FluidSynth's internal 64-sample clock).
        # Dynamic sample loading reads only the soundfont samples the song plays.
        command = [
            fluidsynth,
            "-ni",
            "-q",
            "-C",
            "0",
            "-R",
            "1" if reverb else "0",
            "-g",
            str(FLUIDSYNTH_GAIN),
            "-z",
            "4096",
            "-o",
            "synth.dynamic-sample-loading=1",
            "-r",
            str(RENDER_RATE_HZ),
            "-T",
            "raw",
            "-O",
            "float",
            "-E",
            "little",
            "-F",
            str(self.raw_path),
            str(soundfont),
            str(midi_path),
        ]
        try:
            self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except FileNotFoundError as exc:
            raise MissingTool(f"FluidSynth is not installed ({fluidsynth}); run scripts/install.sh") from exc
        self._audio: np.ndarray | None = None
        self._error: str | None = None
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        _, stderr = self._process.communicate()
        if self._process.returncode != 0:
            self._error = f"FluidSynth failed: {stderr.decode(errors='replace').strip()[:300]}"
            return
        raw = np.fromfile(self.raw_path, dtype="<f4")
        frames = soxr.resample(raw[: len(raw) // 2 * 2].reshape(-1, 2), RENDER_RATE_HZ, self.sample_rate_hz)
        out = np.zeros((2, self.n_samples), np.float32)
        kept = min(self.n_samples, len(frames))
        out[:, :kept] = frames[:kept].T
        self._audio = out

    def cancel(self) -> None:
        """Stop an abandoned render; its thread has ended when this returns (its files may go)."""
        if self._process.poll() is None:
            self._process.kill()
        self._thread.join()

    def result(self) -> np.ndarray:
        """The stem as float32 [2, n_samples], cut or padded to the song's exact length."""
        self._thread.join()
        if self._error is not None or self._audio is None:
            raise MissingTool(self._error or "FluidSynth produced no audio")
        return self._audio
