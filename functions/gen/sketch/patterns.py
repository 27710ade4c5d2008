"""Bar-long drum, bass and comping patterns on a sixteenth-note grid."""

from __future__ import annotations

from dataclasses import dataclass

from functions.gen.sketch.theory import Chord, nearest_pitch

KICK, SNARE, CLAP, RIM, CLOSED_HAT, PEDAL_HAT, OPEN_HAT, CRASH, RIDE, TAMBOURINE, SHAKER = (
    36,
    38,
    39,
    37,
    42,
    44,
    46,
    49,
    51,
    54,
    70,
)
LOW_TOM, MID_TOM, HIGH_TOM = 45, 47, 50

# Velocity by pattern character: X accent, x normal, o soft.
_VELOCITY = {"X": 118, "x": 96, "o": 62}

# Per pattern: (drum, 16-step string, lowest intensity at which it plays).
DRUM_PATTERNS: dict[str, tuple[tuple[int, str, int], ...]] = {
    "backbeat": (
        (KICK, "x.......x.x.....", 2),
        (SNARE, "....x.......x...", 2),
        (CLOSED_HAT, "x.x.x.x.x.x.x.x.", 1),
        (TAMBOURINE, "....o.......o...", 3),
    ),
    "four": (
        (KICK, "x...x...x...x...", 1),
        (CLAP, "....x.......x...", 2),
        (CLOSED_HAT, "o.o.o.o.o.o.o.o.", 2),
        (OPEN_HAT, "..x...x...x...x.", 3),
    ),
    "rock": (
        (KICK, "x.....x.x.......", 2),
        (SNARE, "....X.......X...", 2),
        (CLOSED_HAT, "x.x.x.x.x.x.x.x.", 1),
        (RIDE, "x.x.x.x.x.x.x.x.", 3),
    ),
    "punk": (
        (KICK, "x.x.x.x.x.x.x.x.", 2),
        (SNARE, "....X.......X...", 2),
        (CLOSED_HAT, "x.x.x.x.x.x.x.x.", 1),
    ),
    "metal": (
        (KICK, "xxxxxxxxxxxxxxxx", 2),
        (SNARE, "....X.......X...", 2),
        (CLOSED_HAT, "x...x...x...x...", 1),
        (CRASH, "x.......x.......", 3),
    ),
    "boombap": (
        (KICK, "x......x..x.....", 2),
        (SNARE, "....x.......x...", 2),
        (CLOSED_HAT, "x.x.x.x.x.x.x.x.", 1),
        (OPEN_HAT, "..............o.", 3),
    ),
    "jazz": (
        (RIDE, "x...x.x.x...x.x.", 1),
        (PEDAL_HAT, "....x.......x...", 1),
        (KICK, "o.......o.......", 2),
        (SNARE, "......o.......o.", 3),
    ),
    "bossa": (
        (KICK, "x..x x..x..x x..".replace(" ", "."), 2),
        (RIM, "x..x..x...x..x..", 1),
        (CLOSED_HAT, "x.x.x.x.x.x.x.x.", 1),
    ),
    "onedrop": (
        (KICK, "........x.......", 2),
        (RIM, "........x.......", 2),
        (CLOSED_HAT, "..x...x...x...x.", 1),
        (OPEN_HAT, "..............x.", 3),
    ),
    "shuffle": (
        (KICK, "x.......x.......", 2),
        (SNARE, "....x.......x...", 2),
        (CLOSED_HAT, "x.x.x.x.x.x.x.x.", 1),
        (RIDE, "x.x.x.x.x.x.x.x.", 3),
    ),
    "folk": (
        (KICK, "x.......x.......", 2),
        (RIM, "....x.......x...", 2),
        (TAMBOURINE, "..x...x...x...x.", 1),
        (SNARE, "....o.......o...", 3),
    ),
    "ballad": (
        (KICK, "x.........x.....", 2),
        (RIM, "........x.......", 2),
        (CLOSED_HAT, "x...x...x...x...", 1),
        (SNARE, "........x.......", 3),
    ),
    "waltz": ((KICK, "x...........", 2), (SNARE, "....o...o...", 2), (CLOSED_HAT, "x.x.x.x.x.x.", 1)),
    "none": (),
}


@dataclass(frozen=True)
class Hit:
    """One note on the sixteenth grid of a bar: start step, length in steps, pitch, velocity."""

    step: float
    steps: float
    pitch: int
    velocity: int


def drum_bar(pattern: str, bar_steps: int, intensity: int, crash: bool, fill: bool) -> list[Hit]:
    """One bar of drums at `intensity` 1 (sparse) – 3 (full), with an optional crash and a fill."""
    name = "waltz" if bar_steps == 12 and pattern != "none" else pattern
    hits = []
    fill_from = bar_steps - 4 if fill else bar_steps
    for drum, steps, level in DRUM_PATTERNS[name]:
        if intensity < level:
            continue
        for i, ch in enumerate(steps[:bar_steps]):
            if ch != "." and (i < fill_from or drum in (KICK, CLOSED_HAT, RIDE)):
                hits.append(Hit(i, 1, drum, _VELOCITY[ch] - (14 if intensity == 1 else 0)))
    if fill and name != "none":
        for k, step in enumerate(range(fill_from, bar_steps)):
            hits.append(Hit(step, 1, (HIGH_TOM, MID_TOM, LOW_TOM, SNARE)[k % 4], 80 + 8 * k))
    if crash and name != "none":
        hits.append(Hit(0, 4, CRASH, 104))
    return hits


def _pattern_steps(pattern: str, bar_steps: int) -> list[int]:
    return [i for i, ch in enumerate(pattern[:bar_steps]) if ch == "x"]


def bass_bar(
    pattern: str, chord: Chord, next_chord: Chord, bar_steps: int, scale: tuple[int, ...]
) -> list[Hit]:
    """One bar of bass following `chord`, leading towards `next_chord` where the pattern walks."""
    root = nearest_pitch((chord.root_pc,), 40, 33, 52)
    fifth = root + 7
    beats = bar_steps // 4
    if pattern == "root8":
        return [Hit(s, 1.8, root if s < bar_steps - 2 else fifth, 92) for s in range(0, bar_steps, 2)]
    if pattern == "root4":
        return [Hit(s, 3.6, root, 90) for s in range(0, bar_steps, 4)]
    if pattern == "root5":
        return [Hit(0, 7.5, root, 94), Hit(8, bar_steps - 8.5, fifth - 12, 86)]
    if pattern == "pulse":
        return [Hit(0, bar_steps - 0.5, root, 88)]
    if pattern == "octave":
        return [Hit(s, 1.6, root + (12 if (s // 2) % 2 else 0), 94) for s in range(0, bar_steps, 2)]
    if pattern == "offbeat8":
        return [Hit(s, 1.5, root, 100) for s in range(2, bar_steps, 4)]
    if pattern == "walking":
        third = nearest_pitch((chord.pitch_classes[1],), root + 4, root, root + 12)
        target = nearest_pitch((next_chord.root_pc,), root, 33, 55)
        approach = target - 1 if target > root else target + 1
        line = [root, third, fifth, approach][:beats]
        return [Hit(i * 4, 3.6, p, 92 - 6 * (i % 2)) for i, p in enumerate(line)]
    if pattern == "synco":
        pitches = [root, root, fifth, root + 12, fifth, root]
        return [
            Hit(s, 1.5, pitches[i % len(pitches)], 96)
            for i, s in enumerate(_pattern_steps("x..x..x.x..x.x..", bar_steps))
        ]
    if pattern == "reggae":
        return [
            Hit(s, 2.5, p, 98)
            for s, p in zip(_pattern_steps("x.....x.x.......", bar_steps), [root, root, fifth], strict=False)
        ]
    if pattern == "sub":
        return [Hit(0, 6.5, root, 104), Hit(10 if beats == 4 else 7, 5.5, root, 96)]
    raise ValueError(f"unknown bass pattern {pattern!r}")


def comp_bar(pattern: str, voicing: tuple[int, ...], bar_steps: int) -> list[Hit]:
    """One bar of accompaniment playing `voicing` in the given comping pattern."""
    hits: list[Hit] = []

    def chord_at(step: float, steps: float, velocity: int, strum_steps: float = 0.0) -> None:
        for k, pitch in enumerate(voicing):
            hits.append(Hit(step + k * strum_steps, steps - k * strum_steps, pitch, velocity))

    if pattern == "pad":
        chord_at(0, bar_steps, 70)
    elif pattern == "block":
        for s in range(0, bar_steps, 8):
            chord_at(s, min(8, bar_steps - s) - 0.3, 80)
    elif pattern == "strum8":
        for s in range(0, bar_steps, 2):
            chord_at(s, 1.9, 84 if s % 4 == 0 else 66, strum_steps=0.06)
    elif pattern == "arp16":
        tones = [*voicing, voicing[0] + 12]
        for s in range(bar_steps):
            hits.append(Hit(s, 0.9, tones[s % len(tones)] + 12, 76 if s % 4 == 0 else 60))
    elif pattern == "arp8":
        tones = [voicing[0] - 12, *voicing, voicing[0] + 12, *reversed(voicing[1:])]
        for i, s in enumerate(range(0, bar_steps, 2)):
            hits.append(Hit(s, 3.5, tones[i % len(tones)], 74 if s % 4 == 0 else 62))
    elif pattern == "offbeat":
        for s in range(2, bar_steps, 4):
            chord_at(s, 1.0, 82)
    elif pattern in ("stab", "bossa"):
        for s in _pattern_steps("x..x..x...x..x..", bar_steps):
            chord_at(s, 1.5, 86)
    elif pattern == "power":
        root = nearest_pitch((voicing[0] % 12,), 45, 40, 52)
        for s in range(0, bar_steps, 2):
            for pitch in (root, root + 7, root + 12):
                hits.append(Hit(s, 1.2, pitch, 96 if s % 4 == 0 else 80))
    elif pattern == "broken":
        hits.append(Hit(0, bar_steps / 2, voicing[0] - 12, 78))
        for s in (6, 12) if bar_steps == 16 else (4, 8):
            chord_at(s, 3.5, 64, strum_steps=0.1)
    elif pattern == "swingcomp":
        chord_at(0, 5, 72)
        chord_at(6, 2, 66)
    else:
        raise ValueError(f"unknown comping pattern {pattern!r}")
    return hits
