"""The sketch composer: lyrics + style -> a bar-accurate score (band parts and sung lines)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from functions.errors import InvalidRequest
from functions.gen.lyrics import Section, syllables_per_word, words
from functions.gen.sketch.patterns import Hit, bass_bar, comp_bar, drum_bar
from functions.gen.sketch.styles import StylePlan
from functions.gen.sketch.theory import (
    PROGRESSIONS,
    Chord,
    diatonic_chord,
    nearest_pitch,
    scale_pcs,
    voice_chord,
)

VOCAL_RANGE = {"female": (57, 77), "male": (45, 65)}
# Arrangement density by section: 1 sparse … 3 full.
INTENSITY = {"intro": 1, "verse": 2, "pre-chorus": 2, "chorus": 3, "bridge": 1, "instrumental": 3, "outro": 2}
LOUDNESS = {
    "intro": 0.8,
    "verse": 0.85,
    "pre-chorus": 0.92,
    "chorus": 1.0,
    "bridge": 0.85,
    "instrumental": 1.0,
    "outro": 0.85,
}


@dataclass(frozen=True)
class Note:
    pitch: int
    start_s: float
    end_s: float
    velocity: int


@dataclass
class Part:
    """One instrument of the band; `stem` says which stem it renders into."""

    name: str
    stem: str
    program: int
    is_drum: bool
    notes: list[Note] = field(default_factory=list)


@dataclass(frozen=True)
class SungLine:
    text: str
    words: tuple[str, ...]
    syllables: tuple[int, ...]  # per word
    notes: tuple[tuple[float, float, int], ...]  # per syllable: onset_s, duration_s, MIDI pitch


@dataclass(frozen=True)
class PlacedSection:
    kind: str
    start_bar: int
    bars: int
    lines: tuple[str, ...]
    sung: bool


@dataclass
class Score:
    style: StylePlan
    bpm: float
    duration_s: float
    bars: int
    line_bars: int
    sections: list[PlacedSection]
    parts: list[Part]
    lines: list[SungLine]

    @property
    def bar_s(self) -> float:
        return self.style.beats_per_bar * 60.0 / self.bpm


def _sub_rng(seed: int, *labels: object) -> np.random.Generator:
    """A generator that depends only on the seed and the labels, so repeated material repeats exactly."""
    key = zlib.crc32(repr(labels).encode())
    return np.random.default_rng([seed, key])


def bars_for(duration_s: float, bpm: float, beats_per_bar: int) -> int:
    return max(3, round(duration_s * bpm / (60.0 * beats_per_bar)))


def line_bars_for(bpm: float, beats_per_bar: int) -> int:
    """Bars per sung line: two when two bars last ≤ 5.4 s, else one (slow songs)."""
    return 2 if 2 * beats_per_bar * 60.0 / bpm <= 5.4 else 1


def _split_long_lines(lines: tuple[str, ...], max_syllables: int) -> tuple[str, ...]:
    out: list[str] = []
    for line in lines:
        ws = words(line)
        counts = syllables_per_word(line)
        if sum(counts) <= max_syllables:
            out.append(line)
            continue
        chunk: list[str] = []
        total = 0
        for w, n in zip(ws, counts, strict=True):
            if chunk and total + n > max_syllables:
                out.append(" ".join(chunk))
                chunk, total = [], 0
            chunk.append(w)
            total += n
        if chunk:
            out.append(" ".join(chunk))
    return tuple(out)


def plan_form(
    sections: list[Section], total_bars: int, line_bars: int, bpm: float, sung: bool, bar_s: float
) -> list[PlacedSection]:
    """Lay the lyric sections on `total_bars` bars: intro, sections, repeats or breaks, outro."""
    blocks: list[tuple[str, int, tuple[str, ...]]] = []
    for s in sections:
        bars = len(s.lines) * line_bars if s.lines and s.kind != "instrumental" else 4
        if s.kind in ("intro", "outro") and not s.lines:
            bars = 2
        blocks.append((s.kind, bars, s.lines if s.kind != "instrumental" else ()))
    needed = sum(b for _, b, _ in blocks) + 1  # + the closing bar
    if needed > total_bars:
        n_lines = sum(len(s.lines) for s in sections)
        raise InvalidRequest(
            "lyrics",
            n_lines,
            f"the lyrics need at least {needed * bar_s:.0f} s at {bpm:.0f} bpm ({n_lines} lines) "
            f"but the song is {total_bars * bar_s:.0f} s; raise the duration or shorten the lyrics",
        )
    spare = total_bars - needed
    kinds = [k for k, _, _ in blocks]
    if "intro" not in kinds:
        intro = min(spare, 2 if total_bars < 24 else 4)
        if intro:
            blocks.insert(0, ("intro", intro, ()))
            spare -= intro
    outro_bars = 0
    if "outro" not in kinds:
        outro_bars = min(spare, 1 if total_bars < 24 else 3)
        spare -= outro_bars
    chorus = next((b for b in blocks if b[0] == "chorus"), None)
    repeats = 0
    while chorus and sung and spare >= chorus[1] + 4 and repeats < 2:
        # A musician would put a break before repeating the last chorus.
        blocks.append(("instrumental", 4, ()))
        blocks.append(chorus)
        spare -= chorus[1] + 4
        repeats += 1
    while spare > 0:
        bars = min(spare, 8)
        position = min(len(blocks), 3) if spare > 2 else len(blocks)
        blocks.insert(position, ("instrumental", bars, ()))
        spare -= bars
    if outro_bars:
        blocks.append(("outro", outro_bars, ()))
    placed: list[PlacedSection] = []
    bar = 0
    for kind, bars, lines in blocks:
        placed.append(PlacedSection(kind, bar, bars, lines, sung and bool(lines)))
        bar += bars
    placed.append(PlacedSection("outro", bar, 1, (), False))  # closing bar: the final chord rings
    return placed


def instrumental_sections(total_bars: int, line_bars: int) -> list[Section]:
    """A form for a song without lyrics: verse and chorus melodies for the lead instrument."""
    phrase = ("la la la la la la", "la la la la la la la la")
    lines_left = max(1, (total_bars - 1) // line_bars * 3 // 4)  # a quarter stays for intro, breaks, ending
    sections: list[Section] = []
    kinds = ("verse", "chorus")
    while lines_left > 0:
        count = min(4, lines_left)
        sections.append(Section(kinds[len(sections) % 2], (phrase * 2)[:count]))
        lines_left -= count
    return sections


class Composer:
    """Builds one Score from a style plan, lyric sections and a seed."""

    def __init__(self, style: StylePlan, seed: int) -> None:
        self.style = style
        self.seed = seed
        self.scale = scale_pcs(style.tonic_pc, style.mode)

    # 1. form
    def compose(
        self, sections: list[Section], duration_s: float, sung: bool, form_only: bool = False
    ) -> Score:
        """The whole score; with `form_only`, just the sections placed in bars (what a check needs)."""
        style = self.style
        total_bars = bars_for(duration_s, style.bpm, style.beats_per_bar)
        bpm = total_bars * style.beats_per_bar * 60.0 / duration_s  # exact length, tempo within half a bar
        line_bars = line_bars_for(bpm, style.beats_per_bar)
        bar_steps = 4 * style.beats_per_bar
        max_syllables = line_bars * bar_steps - 2
        sections = [Section(s.kind, _split_long_lines(s.lines, max_syllables)) for s in sections]
        if not sung and not any(s.lines for s in sections):
            sections = instrumental_sections(total_bars, line_bars) + [s for s in sections if not s.lines]
        bar_s = style.beats_per_bar * 60.0 / bpm
        try:
            form = plan_form(sections, total_bars, line_bars, bpm, sung, bar_s)
        except InvalidRequest:
            if line_bars == 1 or not sung:
                raise
            line_bars = 1  # a faster delivery: one bar per line
            form = plan_form(sections, total_bars, line_bars, bpm, sung, bar_s)
        score = Score(style, bpm, duration_s, total_bars, line_bars, form, [], [])
        if form_only:
            return score
        chords = self._harmony(form)
        self._band(score, chords)
        self._melodies(score, chords)
        return score

    # 2. harmony: one chord per bar, the same progression for every section of a kind
    def _harmony(self, form: list[PlacedSection]) -> list[Chord]:
        table = PROGRESSIONS[self.style.mode]
        chords: list[Chord] = []
        for section in form:
            key = {"outro": "verse", "instrumental": "chorus"}.get(section.kind, section.kind)
            options = table.get(key, table["verse"])
            progression = options[int(_sub_rng(self.seed, "progression", key).integers(len(options)))]
            for i in range(section.bars):
                degree = progression[i % len(progression)]
                if section is form[-1]:
                    degree = 0
                chords.append(
                    diatonic_chord(self.style.tonic_pc, self.style.mode, degree, self.style.genre.sevenths)
                )
        return chords

    def _time(self, bar: int, step: float, score: Score) -> float:
        """Seconds at a sixteenth step of a bar, with the genre's swing on off-beat eighths."""
        step_s = 15.0 / score.bpm
        swing = self.style.genre.swing_beats * 4 * step_s if int(step) % 4 == 2 else 0.0
        return bar * score.bar_s + step * step_s + swing

    def _add(self, part: Part, bar: int, hits: list[Hit], score: Score, gain: float, humanize: float) -> None:
        rng = _sub_rng(self.seed, "humanize", part.name, bar)
        step_s = 15.0 / score.bpm
        end_of_song = score.duration_s
        for hit in hits:
            start = self._time(bar, hit.step, score) + float(rng.normal(0, humanize))
            start = max(0.0, start)
            end = min(end_of_song, start + hit.steps * step_s)
            velocity = int(np.clip(hit.velocity * gain + rng.normal(0, 4), 20, 127))
            if end > start:
                part.notes.append(Note(hit.pitch, start, end, velocity))

    # 3. band: drums, bass, comping, pad
    def _band(self, score: Score, chords: list[Chord]) -> None:
        genre = self.style.genre
        bar_steps = 4 * self.style.beats_per_bar
        energy_gain = 0.8 + 0.3 * self.style.energy
        drums = Part("drums", "drums", genre.kit, True)
        bass = Part("bass", "bass", genre.bass[0], False)
        comps = [Part(f"comp{i}", "other", program, False) for i, (program, _) in enumerate(genre.comp)]
        pad = Part("pad", "other", genre.pad, False) if genre.pad is not None else None
        voicing: tuple[int, ...] | None = None
        bar = 0
        for index, section in enumerate(score.sections):
            closing = index == len(score.sections) - 1
            next_kind = score.sections[index + 1].kind if not closing else ""
            intensity = INTENSITY[section.kind]
            gain = LOUDNESS[section.kind] * energy_gain
            for i in range(section.bars):
                chord = chords[bar]
                next_chord = chords[min(bar + 1, len(chords) - 1)]
                voicing = voice_chord(chord, voicing)
                last_bar = i == section.bars - 1
                if closing:
                    self._add(
                        drums, bar, drum_bar(genre.drums, bar_steps, 1, True, False)[-1:], score, gain, 0
                    )
                    self._add(
                        bass, bar, bass_bar("pulse", chord, chord, bar_steps, self.scale), score, gain, 0
                    )
                    for part in comps:
                        self._add(part, bar, comp_bar("pad", voicing, bar_steps), score, gain, 0)
                    bar += 1
                    continue
                quiet_intro = section.kind == "intro" and i < section.bars // 2
                if not quiet_intro:
                    hits = drum_bar(
                        genre.drums,
                        bar_steps,
                        intensity,
                        crash=i == 0 and section.kind in ("chorus", "instrumental"),
                        fill=last_bar and next_kind in ("chorus", "instrumental") and section.bars > 1,
                    )
                    self._add(drums, bar, hits, score, gain, 0.004)
                if section.kind != "intro" or i >= section.bars - 2:
                    self._add(
                        bass,
                        bar,
                        bass_bar(genre.bass[1], chord, next_chord, bar_steps, self.scale),
                        score,
                        gain,
                        0.004,
                    )
                players = comps if intensity >= 2 or len(comps) == 1 else comps[:1]
                for part, (_, pattern) in zip(players, genre.comp, strict=False):
                    style = (
                        "pad" if section.kind == "bridge" and part is comps[0] and len(comps) > 1 else pattern
                    )
                    self._add(part, bar, comp_bar(style, voicing, bar_steps), score, gain * 0.9, 0.006)
                if pad is not None and section.kind in ("chorus", "bridge", "instrumental", "outro"):
                    pad_voicing = tuple(p + 12 for p in voicing)
                    self._add(pad, bar, comp_bar("pad", pad_voicing, bar_steps), score, gain * 0.7, 0)
                bar += 1
        score.parts.extend([drums, bass, *comps])
        if pad is not None:
            score.parts.append(pad)
        if not drums.notes:
            score.parts.remove(drums)

    # 4. melody: one note per syllable; sung lines, or the lead instrument where nobody sings
    def _melodies(self, score: Score, chords: list[Chord]) -> None:
        bar_steps = 4 * self.style.beats_per_bar
        line_steps = score.line_bars * bar_steps
        low, high = VOCAL_RANGE[self.style.vocal_gender]
        lead = Part("lead", "other", self.style.genre.lead, False)
        lead_octave = 12 if self.style.vocal_gender == "male" else 0
        for section in score.sections:
            for line_index, line in enumerate(section.lines):
                first_bar = section.start_bar + line_index * score.line_bars
                counts = syllables_per_word(line)
                melody = self._line_melody(
                    section.kind,
                    line_index,
                    sum(counts),
                    line_steps,
                    chords[first_bar : first_bar + score.line_bars],
                    bar_steps,
                    low,
                    high,
                )
                timed = []
                for step, steps, pitch in melody:
                    bar = first_bar + int(step // bar_steps)
                    start = self._time(bar, step % bar_steps, score)
                    duration = steps * 15.0 / score.bpm
                    timed.append((start, duration, pitch))
                if section.sung:
                    score.lines.append(SungLine(line, tuple(words(line)), tuple(counts), tuple(timed)))
                else:
                    for start, duration, pitch in timed:
                        lead.notes.append(Note(pitch + lead_octave, start, start + duration * 0.92, 92))
        # Where nobody sings and no lyric lines exist (breaks, intro), the lead plays the chorus tune.
        tune = self._line_melody("chorus", 0, 8, line_steps, [], bar_steps, low, high)
        for section in score.sections:
            if section.kind in ("instrumental",) and not section.lines:
                for start_bar in range(
                    section.start_bar, section.start_bar + section.bars - 1, score.line_bars
                ):
                    if start_bar + score.line_bars > section.start_bar + section.bars:
                        break
                    chord_pcs = chords[start_bar].pitch_classes
                    for step, steps, pitch in tune:
                        bar = start_bar + int(step // bar_steps)
                        pitch = pitch if step % 8 else nearest_pitch(chord_pcs, pitch, low, high)
                        start = self._time(bar, step % bar_steps, score)
                        end = start + steps * 15.0 / score.bpm * 0.92
                        lead.notes.append(Note(pitch + lead_octave, start, end, 88))
        if lead.notes:
            score.parts.append(lead)

    def _line_melody(
        self,
        kind: str,
        line_index: int,
        syllables: int,
        line_steps: int,
        chords: list[Chord],
        bar_steps: int,
        low: int,
        high: int,
    ) -> list[tuple[float, float, int]]:
        """(step, length in steps, pitch) per syllable; depends only on seed, kind, line and syllables."""
        rng = _sub_rng(self.seed, "melody", kind, line_index % 4, syllables)
        rest = max(2, line_steps // 8)
        usable = line_steps - rest
        lengths = [2] * syllables
        shorten = max(0, 2 * syllables - usable)
        for i in rng.permutation(syllables)[:shorten]:
            lengths[int(i)] = 1
        extra = usable - sum(lengths)
        if extra > 0 and syllables:
            for i in rng.permutation(max(1, syllables - 1)):
                if extra < 2:
                    break
                if rng.random() < 0.45:
                    lengths[int(i)] += 2
                    extra -= 2
            lengths[-1] += extra
        center = (low + high) / 2 + {"chorus": 3, "pre-chorus": 1, "bridge": 2}.get(kind, -2)
        target = float(center + rng.integers(-3, 4))
        direction = 1 if rng.random() < 0.5 else -1
        notes, step = [], 0.0
        for i, length in enumerate(lengths):
            bar = int(step // bar_steps)
            chord = chords[bar] if bar < len(chords) else None
            strong = step % 4 == 0 or i == len(lengths) - 1
            options = chord.pitch_classes if chord is not None and strong else self.scale
            target += direction * float(rng.choice([1, 2, 2, 3]))
            if target > high - 2 or target < low + 2 or rng.random() < 0.25:
                direction = -direction
            target = float(np.clip(target, low + 1, high - 1))
            pitch = nearest_pitch(options, target, low, high)
            notes.append((step, float(length) * 0.95, pitch))
            step += length
        return notes
