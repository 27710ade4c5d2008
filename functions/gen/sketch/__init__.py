"""The sketch engine: a deterministic General MIDI composer with an espeak-ng + WORLD singer.

It is not a neural model. It exists so the studio works with no GPU and no weights, and so every
other part of Refrain (mastering, storage, UI) has real songs with true stems to work on.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from functions.errors import InvalidRequest, MissingTool
from functions.gen.engine import STEM_NAMES, RenderedSong
from functions.gen.lyrics import Section, format_lyrics, parse_lyrics
from functions.gen.sketch.compose import Composer, Score, SungLine, _sub_rng
from functions.gen.sketch.espeak import Espeak
from functions.gen.sketch.render import StemRender, write_midi
from functions.gen.sketch.styles import StylePlan, plan_style
from functions.gen.sketch.theory import key_name
from functions.gen.sketch.voice import sing
from functions.progress import ProgressFn, no_progress
from functions.request import SongRequest

__all__ = ["SketchEngine"]

SAMPLE_RATE_HZ = 44100
SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/opt/homebrew/share/soundfonts/FluidR3_GM.sf2",
    "/usr/local/share/soundfonts/FluidR3_GM.sf2",
)
VOCAL_TO_BAND_RMS = 1.1  # sung passages sit just above the band, as in a pop mix


def find_soundfont(configured: str | None = None) -> Path:
    """The configured soundfont, else FluidR3 GM, else the small GM font that ships with pretty_midi."""
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise MissingTool(f"soundfont {configured} does not exist")
        return path
    for candidate in SOUNDFONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    import pretty_midi

    bundled = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if bundled.is_file():
        return bundled
    raise MissingTool("no General MIDI soundfont found; install fluid-soundfont-gm or set REFRAIN_SOUNDFONT")


class SketchEngine:
    """Engine protocol implementation; `load` once, `generate` many (thread-safe per call)."""

    name = "sketch"
    renders_stems = True  # and deterministically: the same request and seed render the same stems

    def __init__(
        self, soundfont: str | None = None, fluidsynth: str = "fluidsynth", workers: int | None = None
    ):
        self._soundfont_setting = soundfont
        self.fluidsynth = fluidsynth
        self.workers = workers or max(2, os.cpu_count() or 2)
        self.soundfont: Path | None = None
        self.model_version = "sketch-1"

    def load(self, device: str = "cpu") -> None:
        self.soundfont = find_soundfont(self._soundfont_setting)
        Espeak.shared()
        self.model_version = f"sketch-1 ({self.soundfont.stem} + espeak-ng/WORLD)"

    # 1. check inputs (cheap: composes the form only)
    def check(self, request: SongRequest) -> None:
        for i in range(request.variations):
            self._score(request, request.seed + i, form_only=True)

    def _sections(self, request: SongRequest) -> list[Section]:
        if request.lyrics.strip():
            sections = parse_lyrics(request.lyrics)
            if not sections:
                raise InvalidRequest("lyrics", request.lyrics[:40], "the lyrics contain no words to sing")
            return sections
        return []

    def _score(self, request: SongRequest, seed: int, form_only: bool = False) -> Score:
        style: StylePlan = plan_style(request, _sub_rng(seed, "style"))
        sung = not request.instrumental and bool(request.lyrics.strip())
        return Composer(style, seed).compose(self._sections(request), request.duration_s, sung, form_only)

    # 2. generate
    def generate(self, request: SongRequest, *, on_progress: ProgressFn = no_progress) -> list[RenderedSong]:
        if self.soundfont is None:
            self.load()
        assert self.soundfont is not None
        on_progress("planning", 0, 1)
        seeds = [request.seed + i for i in range(request.variations)]
        scores = [self._score(request, seed) for seed in seeds]
        on_progress("planning", 1, 1)
        n_samples = round(request.duration_s * SAMPLE_RATE_HZ)
        band_stems = [s for s in STEM_NAMES if s != "vocals"]
        total = len(scores) * len(band_stems)
        songs = []
        with tempfile.TemporaryDirectory(prefix="refrain-sketch-") as tmp:
            renders: list[dict[str, StemRender]] = []
            try:
                for v, score in enumerate(scores):
                    jobs = {}
                    for stem in band_stems:
                        parts = [p for p in score.parts if p.stem == stem and p.notes]
                        if not parts:
                            continue  # e.g. no drum kit in ambient: exact silence, no render
                        midi_path = Path(tmp) / f"v{v}-{stem}.mid"
                        write_midi(parts, midi_path)
                        jobs[stem] = StemRender(
                            self.fluidsynth,
                            self.soundfont,
                            midi_path,
                            SAMPLE_RATE_HZ,
                            n_samples,
                            reverb=stem != "bass",
                        )
                    renders.append(jobs)
                # The singer works while FluidSynth renders in its own processes.
                vocals = []
                for v, score in enumerate(scores):
                    on_progress("singing", v, len(scores))
                    vocals.append(
                        sing(
                            score.lines,
                            score.style.vocal_gender,
                            request.duration_s,
                            SAMPLE_RATE_HZ,
                            self.workers,
                        )
                    )
                on_progress("singing", len(scores), len(scores))
                done = 0
                for v, score in enumerate(scores):
                    stems = {}
                    for stem in band_stems:
                        job = renders[v].get(stem)
                        stems[stem] = job.result() if job else np.zeros((2, n_samples), np.float32)
                        done += 1
                        on_progress("composing", done, total)
                    stems["vocals"] = vocals[v]
                    songs.append(self._finish(request, score, seeds[v], stems))
            except BaseException:  # cancelled or failed: stop FluidSynth before its folder goes
                for pending in renders:
                    for render in pending.values():
                        render.cancel()
                raise
        return songs

    def _finish(
        self, request: SongRequest, score: Score, seed: int, stems: dict[str, np.ndarray]
    ) -> RenderedSong:
        """Balance the stems, fade the last bar, and sum them into the mix."""
        # Big arrays are touched as few times as possible: fresh pages are expensive on small VMs.
        mix = np.zeros_like(stems["drums"])
        for name in ("drums", "bass", "other"):
            mix += stems[name]
        band_rms = float(np.sqrt(np.einsum("ij,ij->", mix, mix, dtype=np.float64) / mix.size)) or 1.0
        vocal = stems["vocals"]
        energy = np.einsum("ij,ij->j", vocal, vocal)
        sung_samples = int(np.count_nonzero(energy > 1e-6))
        if sung_samples:
            vocal_rms = float(np.sqrt(energy.sum(dtype=np.float64) / (2 * sung_samples)))
            vocal *= np.float32(VOCAL_TO_BAND_RMS * band_rms / vocal_rms)
        mix += vocal
        fade_len = int(min(score.bar_s, 2.5) * SAMPLE_RATE_HZ)
        fade = np.linspace(1.0, 0.0, fade_len, dtype=np.float32) ** 2
        for audio in (*stems.values(), mix):
            audio[:, -fade_len:] *= fade  # only the last bar fades
        ordered = {name: stems[name] for name in STEM_NAMES}
        style = score.style
        sections = [Section(s.kind, s.lines) for s in score.sections if s.lines and s.sung]
        return RenderedSong(
            audio=mix,
            sample_rate_hz=SAMPLE_RATE_HZ,
            seed=seed,
            engine=self.name,
            model_version=self.model_version,
            title=request.title,
            lyrics=format_lyrics(sections) if sections else "",
            stems=ordered,
            metadata={
                "genre": style.genre.name,
                "bpm": round(score.bpm, 2),
                "key": key_name(style.tonic_pc, style.mode),
                "time_signature": f"{style.beats_per_bar}/4",
                "vocal": "none" if not score.lines else style.vocal_gender,
                "instruments": sorted({p.name for p in score.parts}),
                "form": [f"{s.kind}:{s.bars}" for s in score.sections],
                "aligned_words": aligned_words(score.lines),
                "note": "sketch engine: General MIDI composer + espeak-ng/WORLD singer, not a neural model",
            },
        )


def aligned_words(lines: list[SungLine]) -> list[dict[str, object]]:
    """When each sung word starts and ends: the composer placed every syllable on a note."""
    words = []
    for line in lines:
        note = 0
        for word, syllables in zip(line.words, line.syllables, strict=False):
            notes = line.notes[note : note + syllables]
            note += syllables
            if not notes:
                break
            start, end = notes[0][0], notes[-1][0] + notes[-1][1]
            words.append({"word": word, "start_s": round(start, 3), "end_s": round(end, 3)})
    return words
