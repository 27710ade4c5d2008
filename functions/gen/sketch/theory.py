"""Scales, diatonic chords, progressions and voice leading for the sketch composer."""

from __future__ import annotations

from dataclasses import dataclass

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)  # natural minor; V is raised to major at cadences
NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

# Progressions as scale degrees (0 = tonic), one chord per bar, by mode and section kind.
PROGRESSIONS: dict[str, dict[str, tuple[tuple[int, ...], ...]]] = {
    "major": {
        "verse": ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 5, 4), (0, 3, 0, 4)),
        "pre-chorus": ((3, 4, 3, 4), (1, 4, 1, 4), (5, 3, 1, 4)),
        "chorus": ((3, 4, 0, 5), (0, 4, 5, 3), (3, 0, 4, 5), (5, 3, 0, 4)),
        "bridge": ((5, 3, 0, 4), (1, 3, 4, 4), (3, 4, 2, 5), (5, 4, 3, 4)),
        "intro": ((0, 3, 5, 4), (0, 5, 3, 4), (0, 4, 5, 3)),
    },
    "minor": {
        "verse": ((0, 5, 2, 6), (0, 3, 5, 4), (0, 6, 5, 6), (0, 3, 0, 4)),
        "pre-chorus": ((3, 4, 3, 4), (5, 6, 3, 4), (1, 4, 1, 4)),
        "chorus": ((5, 2, 6, 0), (5, 6, 0, 0), (3, 5, 6, 0), (0, 5, 2, 6)),
        "bridge": ((3, 2, 5, 4), (5, 6, 3, 4), (3, 0, 5, 4)),
        "intro": ((0, 5, 2, 6), (0, 3, 5, 4), (0, 6, 5, 6)),
    },
}


@dataclass(frozen=True)
class Chord:
    root_pc: int  # pitch class 0–11
    intervals: tuple[int, ...]  # semitones above the root, root included

    @property
    def pitch_classes(self) -> tuple[int, ...]:
        return tuple((self.root_pc + i) % 12 for i in self.intervals)


def scale_pcs(tonic_pc: int, mode: str) -> tuple[int, ...]:
    steps = MINOR_SCALE if mode == "minor" else MAJOR_SCALE
    return tuple((tonic_pc + s) % 12 for s in steps)


def diatonic_chord(tonic_pc: int, mode: str, degree: int, sevenths: bool) -> Chord:
    """The chord built in thirds on `degree` of the key; minor keys get a major V (harmonic minor)."""
    steps = MINOR_SCALE if mode == "minor" else MAJOR_SCALE
    stack = [steps[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4, 6)]
    intervals = [s - stack[0] for s in stack]
    if mode == "minor" and degree == 4:
        intervals[1] = 4  # raised leading tone
    if not sevenths:
        intervals = intervals[:3]
    return Chord((tonic_pc + steps[degree]) % 12, tuple(intervals))


def voice_chord(
    chord: Chord, previous: tuple[int, ...] | None, low: int = 52, high: int = 72
) -> tuple[int, ...]:
    """Close voicing of `chord` inside [low, high] that moves least from `previous`."""
    candidates = []
    pcs = chord.pitch_classes
    for inversion in range(len(pcs)):
        order = pcs[inversion:] + pcs[:inversion]
        for base in range(low, high):
            if base % 12 != order[0]:
                continue
            notes = [base]
            for pc in order[1:]:
                nxt = notes[-1] + 1
                while nxt % 12 != pc:
                    nxt += 1
                notes.append(nxt)
            if notes[-1] <= high:
                candidates.append(tuple(notes))
    if not candidates:
        return tuple(low + ((pc - low) % 12) for pc in pcs)
    if previous is None:
        center = (low + high) / 2
        return min(candidates, key=lambda v: (abs(sum(v) / len(v) - center), v))
    return min(candidates, key=lambda v: (sum(min(abs(a - b) for b in previous) for a in v), v))


def nearest_pitch(pc_options: tuple[int, ...], target: float, low: int, high: int) -> int:
    """The pitch in [low, high] whose class is in `pc_options`, nearest to `target`."""
    best = low
    best_distance = float("inf")
    for pitch in range(low, high + 1):
        if pitch % 12 in pc_options and abs(pitch - target) < best_distance:
            best, best_distance = pitch, abs(pitch - target)
    return best


def key_name(tonic_pc: int, mode: str) -> str:
    return f"{NOTE_NAMES[tonic_pc]} {mode}"
