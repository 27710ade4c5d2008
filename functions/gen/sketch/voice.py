"""The sketch singer: espeak-ng speech re-pitched and time-stretched onto melody notes with WORLD."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyworld
import soxr
from scipy.ndimage import uniform_filter1d
from scipy.signal import fftconvolve, resample_poly

from functions.gen.sketch.compose import SungLine
from functions.gen.sketch.espeak import Espeak

ANALYSIS_RATE_HZ = 16000  # WORLD at 16 kHz: half the FFT work of 22.05 kHz, still above espeak's bandwidth
ANALYSIS_FRAME_MS = 10.0
SYNTH_FRAME_MS = 5.0
# espeak voice and WORLD f0 floor; floors ≥ 94 Hz keep WORLD's FFT at 512 points at 16 kHz (half the
# work of 1024), and only voicing (not pitch) is read from the analysis.
VOICES = {"female": ("en-us+f3", 120.0), "male": ("en-us+m3", 100.0)}
_WORD_RE = re.compile(r"[A-Za-zÀ-ÿ']+|\d+")


@dataclass(frozen=True)
class _Analysis:
    f0: np.ndarray  # Hz per analysis frame, 0 where unvoiced
    sp: np.ndarray  # [frames, bins] spectral envelope
    ap: np.ndarray  # [frames, bins] aperiodicity
    word_frames: tuple[tuple[int, int], ...]  # [start, end) analysis frames per word
    silent_frame: int


def _analyse(text: str, voice: str, f0_floor: float) -> _Analysis:
    speech = Espeak.shared().speak(text, voice)
    x = resample_poly(speech.audio.astype(np.float64), ANALYSIS_RATE_HZ, speech.sample_rate_hz)
    x = np.concatenate([x, np.zeros(ANALYSIS_RATE_HZ // 10)])
    f0, t = pyworld.dio(x, ANALYSIS_RATE_HZ, f0_floor=f0_floor, f0_ceil=700.0, frame_period=ANALYSIS_FRAME_MS)
    f0 = pyworld.stonemask(x, f0, t, ANALYSIS_RATE_HZ)
    sp = pyworld.cheaptrick(x, f0, t, ANALYSIS_RATE_HZ, f0_floor=f0_floor)
    ap = pyworld.d4c(x, f0, t, ANALYSIS_RATE_HZ, fft_size=(sp.shape[1] - 1) * 2)
    frames = len(f0)

    def frame_of(sample: int) -> int:
        return int(sample / speech.sample_rate_hz * 1000 / ANALYSIS_FRAME_MS)

    # Word boundaries: espeak's word events, matched to our words by character offset.
    spans = [m.span() for m in _WORD_RE.finditer(text)]
    starts: list[int | None] = [None] * len(spans)
    for char, sample in speech.word_starts:
        for i, (a, b) in enumerate(spans):
            if a <= char < b and starts[i] is None:
                starts[i] = frame_of(sample)
    energy = sp.sum(axis=1)
    last_loud = int(np.nonzero(energy > energy.max() * 1e-4)[0][-1]) + 1 if frames else 0
    known = [(i, s) for i, s in enumerate(starts) if s is not None]
    if not known:
        known = [(0, 0)]
    filled: list[int] = []
    for i in range(len(spans)):
        if starts[i] is not None:
            filled.append(int(starts[i]))  # type: ignore[arg-type]
            continue
        before = max((k for k in known if k[0] < i), default=(0, 0), key=lambda k: k[0])
        after = min((k for k in known if k[0] > i), default=(len(spans), last_loud), key=lambda k: k[0])
        share = (i - before[0]) / max(1, after[0] - before[0])
        filled.append(int(before[1] + share * (after[1] - before[1])))
    bounds = [*filled, max(last_loud, filled[-1] + 1 if filled else 1)]
    word_frames = tuple((bounds[i], max(bounds[i] + 1, bounds[i + 1])) for i in range(len(spans)))
    return _Analysis(f0, sp, ap, word_frames, int(np.argmin(energy)))


def _syllable_segments(analysis: _Analysis, start: int, end: int, syllables: int) -> list[tuple[int, int]]:
    """Split a word's frames into `syllables` segments, each holding an equal share of voiced frames."""
    voiced = np.nonzero(analysis.f0[start:end] > 0)[0] + start
    if len(voiced) < syllables:
        edges = np.linspace(start, end, syllables + 1).astype(int)
    else:
        cuts = [int(voiced[round(j * len(voiced) / syllables)]) for j in range(1, syllables)]
        edges = np.array([start, *cuts, end])
    return [(int(edges[j]), max(int(edges[j]) + 1, int(edges[j + 1]))) for j in range(syllables)]


def _sing_line(line: SungLine, analysis: _Analysis) -> tuple[float, np.ndarray]:
    """Render one line; returns (start time in the song, audio at ANALYSIS_RATE_HZ)."""
    notes = list(line.notes)
    ratio = ANALYSIS_FRAME_MS / SYNTH_FRAME_MS
    lead_in_s = 0.12  # consonants start before the beat, as singers do
    t0 = max(0.0, notes[0][0] - lead_in_s)
    t_end = notes[-1][0] + notes[-1][1] + 0.15
    frames = int((t_end - t0) * 1000 / SYNTH_FRAME_MS) + 1
    position = np.full(frames, float(analysis.silent_frame))  # analysis frame read by each output frame
    midi = np.zeros(frames)
    gain = np.zeros(frames)

    note_index = 0
    for word_index, n_syllables in enumerate(line.syllables):
        if word_index >= len(analysis.word_frames):
            break
        w_start, w_end = analysis.word_frames[word_index]
        for seg_start, seg_end in _syllable_segments(analysis, w_start, w_end, n_syllables):
            if note_index >= len(notes):
                break
            onset_s, duration_s, pitch = notes[note_index]
            note_index += 1
            voiced = np.nonzero(analysis.f0[seg_start:seg_end] > 0)[0]
            consonant = int(voiced[0]) if len(voiced) else 0
            consonant = min(consonant, 8)
            out_onset = int((onset_s - t0) * 1000 / SYNTH_FRAME_MS)
            out_end = int((onset_s + duration_s - t0) * 1000 / SYNTH_FRAME_MS)
            pre = min(int(consonant * ratio), max(0, out_onset - 1))
            # consonant at natural speed just before the note, the vowel stretched over the note
            a = out_onset - pre
            if pre:
                position[a:out_onset] = seg_start + np.arange(pre) / ratio
            length = max(1, out_end - out_onset)
            vowel_start = seg_start + consonant
            position[out_onset:out_end] = vowel_start + np.linspace(
                0, max(0, seg_end - vowel_start - 1), length
            )
            midi[a:out_end] = pitch
            gain[a:out_end] = 1.0

    # pitch: a short glide between notes and vibrato that grows through long notes
    midi = _fill_gaps(midi)
    midi = uniform_filter1d(midi, size=7)
    t = np.arange(frames) * SYNTH_FRAME_MS / 1000
    vibrato = 0.25 * np.sin(2 * np.pi * 5.5 * t) * np.clip((_note_age(gain) - 0.18) / 0.3, 0, 1)
    # nearest analysis frame (10 ms) for each 5 ms output frame: WORLD smooths between pulses anyway,
    # and indexing avoids six frame-by-bin temporaries per line
    index = np.rint(np.clip(position, 0, len(analysis.f0) - 1)).astype(int)
    sp = analysis.sp[index]
    ap = analysis.ap[index]
    voiced_out = (analysis.f0[index] > 0) & (gain > 0)
    f0 = np.where(voiced_out, 440.0 * 2 ** ((midi + vibrato - 69) / 12), 0.0)
    audio = pyworld.synthesize(
        f0, np.ascontiguousarray(sp), np.ascontiguousarray(ap), ANALYSIS_RATE_HZ, SYNTH_FRAME_MS
    )
    envelope = np.repeat(uniform_filter1d(gain, size=3), int(ANALYSIS_RATE_HZ * SYNTH_FRAME_MS / 1000))
    n = min(len(audio), len(envelope))
    return t0, (audio[:n] * envelope[:n]).astype(np.float32)


def _fill_gaps(midi: np.ndarray) -> np.ndarray:
    """Hold the last sung pitch through rests so the glide into the next note starts from it."""
    out = midi.copy()
    nonzero = np.nonzero(out)[0]
    if len(nonzero) == 0:
        return out
    out[: nonzero[0]] = out[nonzero[0]]
    for i in range(1, len(out)):
        if out[i] == 0:
            out[i] = out[i - 1]
    return out


def _note_age(gain: np.ndarray) -> np.ndarray:
    """Seconds since the current sung stretch began (0 in rests)."""
    age = np.zeros(len(gain))
    for i in range(1, len(gain)):
        age[i] = age[i - 1] + SYNTH_FRAME_MS / 1000 if gain[i] > 0 else 0.0
    return age


def _room(rate_hz: int, seed: int) -> np.ndarray:
    """A small room's impulse response: decaying noise, deterministic."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.9 * rate_hz)) / rate_hz
    ir = rng.standard_normal(len(t)) * np.exp(-t / 0.22)
    ir[: int(0.012 * rate_hz)] = 0.0  # pre-delay
    return (ir / np.sqrt(np.sum(ir**2))).astype(np.float32)


def sing(
    lines: list[SungLine], gender: str, duration_s: float, sample_rate_hz: int, workers: int
) -> np.ndarray:
    """The vocal stem, float32 [2, samples] at `sample_rate_hz`, every line on its notes."""
    n_out = round(duration_s * sample_rate_hz)
    if not lines:
        return np.zeros((2, n_out), np.float32)
    voice, f0_floor = VOICES[gender]
    texts = sorted({line.text for line in lines})  # repeated choruses are analysed once
    with ThreadPoolExecutor(max_workers=workers) as pool:
        analyses = dict(
            zip(texts, pool.map(lambda text: _analyse(text, voice, f0_floor), texts), strict=True)
        )
        rendered = list(pool.map(lambda line: _sing_line(line, analyses[line.text]), lines))
    dry = np.zeros(int(duration_s * ANALYSIS_RATE_HZ) + ANALYSIS_RATE_HZ, np.float32)
    for start_s, audio in rendered:
        i = int(start_s * ANALYSIS_RATE_HZ)
        end = min(len(dry), i + len(audio))
        dry[i:end] += audio[: end - i]
    peak = float(np.max(np.abs(dry))) or 1.0
    dry /= peak
    # different rooms left and right: width without moving the voice
    rooms = np.stack([_room(ANALYSIS_RATE_HZ, seed) for seed in (11, 12)])
    wet = fftconvolve(dry[None, :], rooms, axes=1)[:, : len(dry)]
    up = soxr.resample(
        np.ascontiguousarray((dry[None, :] + 0.22 * wet).T, dtype=np.float32),
        ANALYSIS_RATE_HZ,
        sample_rate_hz,
    )
    out = np.zeros((2, n_out), np.float32)
    kept = min(n_out, len(up))
    out[:, :kept] = up[:kept].T
    return out
