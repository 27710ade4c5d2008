"""The song pipeline: lyrics -> engine -> mastering -> encoding -> files, in one visible function."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from functions import __version__
from functions.errors import InvalidRequest
from functions.gen import get_engine
from functions.gen.engine import STEM_NAMES, Engine, RenderedSong
from functions.gen.lyricist import Lyricist, TemplateLyricist
from functions.post.credentials import MIME_TYPES, Provenance, SigningMaterial, sign
from functions.post.encode import AI_LABEL, FORMATS, encode, make_hls, output_names, write_wav
from functions.post.master import DEFAULT_CEILING_DBTP, DEFAULT_TARGET_LUFS, master
from functions.post.stems import Separator, zip_stems
from functions.post.watermark import Backend, embed, message_for
from functions.progress import ProgressFn, no_progress
from functions.request import SongRequest


@dataclass(frozen=True)
class PostOptions:
    target_lufs: float = DEFAULT_TARGET_LUFS
    ceiling_dbtp: float = DEFAULT_CEILING_DBTP
    formats: tuple[str, ...] = FORMATS
    hls: bool = False  # HLS playlist + 4 s segments from the m4a, for in-browser streaming
    signing: SigningMaterial | None = None  # C2PA credentials on every file; None signs nothing
    watermark: Backend | None = None  # inaudible watermark on every file; None marks nothing
    separator: Separator | None = None  # stems for engines that render none (HTDemucs)
    share_prompt: bool = True  # False: credentials hold only the prompt's SHA-256
    ffmpeg: str = "ffmpeg"


@dataclass
class SongOutput:
    """One finished song on disk."""

    index: int
    title: str
    seed: int
    duration_s: float
    lyrics: str
    files: dict[str, Path]
    stems: dict[str, Path] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


def prepare(
    request: SongRequest,
    engine: Engine | None,
    lyricist: Lyricist | None = None,
    on_progress: ProgressFn = no_progress,
) -> tuple[SongRequest, str]:
    """Fill in lyrics and title where the user gave only a description, then check the request fits
    (`engine` None: an engine that runs elsewhere, which checks when the job runs).

    Returns the completed request and the name of the lyricist used ("user" or "none" when none was).
    """
    written_by = "user" if request.lyrics.strip() else "none"
    if not request.lyrics.strip() and not request.instrumental:
        on_progress("writing lyrics", 0, 1)
        lyricist = lyricist or TemplateLyricist()
        written = lyricist.write(
            request.prompt or " ".join(request.style_tags), request.duration_s, request.seed
        )
        request = request.model_copy(
            update={"lyrics": written.lyrics, "title": request.title or written.title}
        )
        written_by = written.backend
        on_progress("writing lyrics", 1, 1)
    if not request.title:
        request = request.model_copy(update={"title": _title_from(request)})
    check = getattr(engine, "check", None)
    if check is not None:
        check(request)
    return request, written_by


def make_songs(
    request: SongRequest,
    out_dir: Path,
    *,
    base_name: str = "song",
    post: PostOptions | None = None,
    stems_dir: Path | None = None,
    engine: Engine | None = None,
    lyricist: Lyricist | None = None,
    lyrics_by: str | None = None,
    song_ids: list[str] | None = None,
    on_progress: ProgressFn = no_progress,
    finish: Finisher | None = None,
) -> list[SongOutput]:
    """Make `request.variations` finished songs in `out_dir`; on any failure nothing is left behind.
    `finish` replaces the in-process finishing chain (the paid tier hands it to a CPU function)."""
    post = post or PostOptions()
    # 1. check inputs, before any heavy work
    _check_writable(out_dir)
    if stems_dir is not None:
        _check_writable(stems_dir)
    engine = engine or get_engine(request.engine)
    # 2. lyrics and title
    request, written_by = prepare(request, engine, lyricist, on_progress)
    written_by = lyrics_by or written_by  # lyrics written at submission keep their author
    # 3. generate
    rendered = engine.generate(request, on_progress=on_progress)
    # 4. master, encode, write — staged, then moved into place together
    outputs = []
    with _staging(out_dir) as stage, _staging(stems_dir) as stem_stage:
        assert stage is not None
        for i, song in enumerate(rendered):
            on_progress("mastering", i, len(rendered))
            song_id = song_ids[i] if song_ids else None
            finisher = finish or finish_song
            outputs.append(
                finisher(song, i, request, base_name, post, stage, stem_stage, written_by, song_id)
            )
            on_progress("encoding", i + 1, len(rendered))
        on_progress("saving", 1, 1)
    for output in outputs:
        output.files = _placed(output.files, stage, out_dir)
        if stems_dir is not None:
            output.stems = {name: stems_dir / path.name for name, path in output.stems.items()}
    return outputs


Finisher = Callable[
    [RenderedSong, int, SongRequest, str, PostOptions, Path, Path | None, str, str | None], SongOutput
]


def finish_song(
    song: RenderedSong,
    index: int,
    request: SongRequest,
    base_name: str,
    post: PostOptions,
    stage: Path,
    stem_stage: Path | None,
    written_by: str,
    song_id: str | None = None,
) -> SongOutput:
    # The watermark goes in before mastering: it moves peaks by up to ~1.5 dB, and mastering after it
    # keeps the loudness and true-peak promises; mastering's smooth gain leaves the mark readable.
    audio, song_stems = song.audio, song.stems
    watermark: dict[str, object] = {"applied": False}
    if post.watermark is not None:
        # the payload points back to the stored song where there is one (the studio), else to the take
        message = message_for(song_id or f"{song.seed}:{request.prompt}:{index}")
        wanted = song_stems if stem_stage is not None else None
        audio, marked_stems = embed(post.watermark, song.audio, song.sample_rate_hz, message, wanted)
        song_stems = marked_stems if marked_stems is not None else song_stems
        watermark = {"applied": True, "backend": post.watermark.name}
        if post.watermark.name == "audioseal":
            watermark["message"] = message
            if song_id:
                watermark["song_id"] = song_id
    mastered = master(audio, song.sample_rate_hz, post.target_lufs, post.ceiling_dbtp)
    names = output_names(base_name, index, post.formats)
    song_name = names[post.formats[0]].split(".", 1)[0]  # song, song-2, … : also names HLS and stems
    files = {fmt: stage / name for fmt, name in names.items()}
    title = song.title or request.title
    comment = f"{AI_LABEL} with Refrain ({song.engine} engine, seed {song.seed})"
    if post.hls and "m4a" not in files:
        files["m4a"] = stage / f".{base_name}-{index}-stream.m4a"  # the HLS source only
    encode(mastered.audio, song.sample_rate_hz, files, title, comment, post.ffmpeg)
    if post.hls:
        files["hls"] = make_hls(files["m4a"], stage / f"{song_name}.hls", post.ffmpeg)
        if files["m4a"].name.startswith("."):
            files.pop("m4a").unlink()
    stems: dict[str, Path] = {}
    if stem_stage is not None:
        if song_stems is not None:  # true stems: the mix's own gain keeps them summing to it
            finished = {name: song_stems[name] * mastered.gain for name in STEM_NAMES}
        elif post.separator is not None:  # separated from the finished song, so they carry its watermark
            finished = post.separator.separate(mastered.audio, song.sample_rate_hz)
        else:
            raise InvalidRequest(
                "stems",
                song.engine,
                f"the {song.engine} engine renders no stems and no stem "
                "model is configured (REFRAIN_STEM_MODEL_DIR)",
            )
        for name, stem_audio in finished.items():
            path = stem_stage / f"{song_name}-{name}.wav"
            write_wav(stem_audio, song.sample_rate_hz, path)
            stems[name] = path
    # Signing is the last byte-changing step for every file that leaves Refrain.
    if post.signing is not None:
        provenance = Provenance(
            title=title,
            engine=song.engine,
            model_version=song.model_version,
            seed=song.seed,
            prompt=request.prompt,
            share_prompt=post.share_prompt,
            watermark=watermark,
            extra={"duration_s": round(song.duration_s, 3), "lyrics_by": written_by},
        )
        for path in [*files.values(), *stems.values()]:
            if path.suffix in MIME_TYPES:
                sign(path, provenance, post.signing, __version__)
    if stems and stem_stage is not None:
        stems["zip"] = zip_stems(dict(stems), stem_stage / f"{song_name}-stems.zip")
    report = mastered.report
    return SongOutput(
        index=index,
        title=song.title or request.title,
        seed=song.seed,
        duration_s=song.duration_s,
        lyrics=song.lyrics,
        files=files,
        stems=stems,
        metadata={
            **song.metadata,
            "engine": song.engine,
            "model_version": song.model_version,
            "lyrics_by": written_by,
            "integrated_lufs": round(report.integrated_lufs, 2),
            "true_peak_dbtp": round(report.true_peak_dbtp, 2),
            "loudness_range_lu": round(report.loudness_range_lu, 1),
            "ai_generated": True,
            "content_credentials": "c2pa" if post.signing is not None else "none",
            "watermark": watermark,
        },
    )


def _title_from(request: SongRequest) -> str:
    words = (request.prompt or " ".join(request.style_tags) or "Untitled").split()
    return " ".join(words[:5]).strip(" ,.").title()[:120] or "Untitled"


def _check_writable(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise InvalidRequest("out", str(directory), f"{directory} is not a directory")
    parent = directory
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InvalidRequest("out", str(directory), f"{parent} is not a directory")
    try:  # the only honest test of writability (root passes os.access everywhere)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise InvalidRequest("out", str(directory), f"cannot write to {directory}: {exc.strerror}") from None


def _placed(files: dict[str, Path], stage: Path, out_dir: Path) -> dict[str, Path]:
    """Where staged files are once `_staging` has moved them in."""
    return {fmt: out_dir / path.relative_to(stage) for fmt, path in files.items()}


@contextmanager
def _staging(directory: Path | None) -> Iterator[Path | None]:
    """A hidden folder next to the destination; its files move in only if the block succeeds."""
    if directory is None:
        yield None
        return
    directory.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".refrain-partial-", dir=directory))
    try:
        yield stage
        for path in sorted(stage.iterdir()):
            if not path.name.startswith("."):
                target = directory / path.name
                if target.is_dir():
                    shutil.rmtree(target)  # a previous run's HLS folder: replaced as a whole
                os.replace(path, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def extend_song(
    request: SongRequest,
    source_wav: Path,
    continue_at_s: float,
    out_dir: Path,
    *,
    post: PostOptions,
    engine: Engine,
    crossfade_s: float = 1.5,
    on_progress: ProgressFn = no_progress,
) -> SongOutput:
    """A clip that plays `source_wav` up to `continue_at_s`, then a new part made from `request`
    (`request.duration_s` long), joined by an equal-power crossfade; finished like any song. An
    engine that continues audio itself (ACE-Step) does the continuing."""
    import soxr

    if hasattr(engine, "extend"):
        return remake_song(request, source_wav, out_dir, post=post, engine=engine, task="extend",
                           on_progress=on_progress, continue_at_s=continue_at_s)  # fmt: skip

    head, rate = _read_source(source_wav)
    length_s = head.shape[1] / rate
    if not 0 < continue_at_s <= length_s:
        raise InvalidRequest(
            "continue_at", str(continue_at_s), f"continue_at must be within the clip (0 to {length_s:.1f} s)"
        )
    request, written_by = prepare(request.model_copy(update={"variations": 1}), engine, None, on_progress)
    [new] = engine.generate(request, on_progress=on_progress)
    tail = new.audio
    if new.sample_rate_hz != rate:
        tail = np.ascontiguousarray(soxr.resample(tail.T, new.sample_rate_hz, rate).T.astype(np.float32))
    # the new part starts exactly at continue_at; the source's following moments fade out under it
    cut = round(continue_at_s * rate)
    fade = min(round(crossfade_s * rate), tail.shape[1])
    after = np.zeros((2, fade), np.float32)
    rest = head[:, cut : cut + fade]
    after[:, : rest.shape[1]] = rest
    t = np.linspace(0.0, np.pi / 2, fade, dtype=np.float32)
    joined = np.concatenate(
        [head[:, :cut], after * np.cos(t) + tail[:, :fade] * np.sin(t), tail[:, fade:]], axis=1
    )
    song = RenderedSong(
        audio=joined,
        sample_rate_hz=rate,
        seed=new.seed,
        engine=new.engine,
        model_version=new.model_version,
        title=request.title,
        lyrics=new.lyrics,
        metadata={**new.metadata, "continue_at_s": round(continue_at_s, 3)},
    )
    return _finish_one(song, request, post, out_dir, written_by, on_progress)


EDITS = ("extend", "repaint", "cover")  # tasks an engine offers as methods of those names


def remake_song(
    request: SongRequest,
    source_wav: Path,
    out_dir: Path,
    *,
    post: PostOptions,
    engine: Engine,
    task: str,
    on_progress: ProgressFn = no_progress,
    **params: Any,
) -> SongOutput:
    """A new clip made by editing `source_wav` with an engine that edits audio: `extend`
    (continue_at_s), `repaint` (start_s, end_s: replace a section) or `cover` (strength)."""
    method = getattr(engine, task, None) if task in EDITS else None
    if method is None:
        raise InvalidRequest("task", task, f"the {engine.name} engine cannot {task} a song")
    audio, _ = _read_source(source_wav, getattr(engine, "sample_rate_hz", None))
    request, written_by = prepare(request.model_copy(update={"variations": 1}), engine, None, on_progress)
    song = method(request, audio, **params, on_progress=on_progress)
    return _finish_one(song, request, post, out_dir, written_by, on_progress)


def _read_source(path: Path, rate_hz: int | None = None) -> tuple[np.ndarray, int]:
    """A stored clip as float32 [channels, samples], resampled to `rate_hz` if one is given."""
    import soundfile
    import soxr

    source, rate = soundfile.read(path, dtype="float32", always_2d=True)
    audio = np.ascontiguousarray(source.T)
    if rate_hz is None or rate_hz == rate:
        return audio, rate
    return np.ascontiguousarray(soxr.resample(audio.T, rate, rate_hz).T.astype(np.float32)), rate_hz


def _finish_one(
    song: RenderedSong, request: SongRequest, post: PostOptions, out_dir: Path, written_by: str,
    on_progress: ProgressFn,
) -> SongOutput:  # fmt: skip
    """One made clip finished and moved into `out_dir` (nothing is left behind on a failure)."""
    with _staging(out_dir) as stage:
        assert stage is not None
        output = finish_song(song, 0, request, "song", post, stage, None, written_by)
        on_progress("saving", 1, 1)
    output.files = _placed(output.files, stage, out_dir)
    return output


def make_stems(
    request: SongRequest,
    source_wav: Path,
    out_dir: Path,
    *,
    post: PostOptions,
    separator: Separator | None,
    engine: Engine,
    on_progress: ProgressFn = no_progress,
) -> list[SongOutput]:
    """The four stems of a finished clip, one output each (index = position in STEM_NAMES).

    With a stem model they are separated from the clip itself; an engine that renders true stems and
    is deterministic (the sketch engine) renders the clip again from its request and seed instead."""
    if separator is not None:
        source, rate = _read_source(source_wav)
        on_progress("separating", 0, 1)
        stems = separator.separate(source, rate)
        on_progress("separating", 1, 1)
    elif getattr(engine, "renders_stems", False):
        with tempfile.TemporaryDirectory(prefix=".refrain-stems-", dir=out_dir) as tmp:
            [again] = make_songs(
                request.model_copy(update={"variations": 1}),
                Path(tmp) / "mix",
                post=PostOptions(
                    target_lufs=post.target_lufs,
                    ceiling_dbtp=post.ceiling_dbtp,
                    formats=("wav",),
                    watermark=post.watermark,
                    ffmpeg=post.ffmpeg,
                ),
                stems_dir=Path(tmp) / "stems",
                engine=engine,
                on_progress=on_progress,
            )
            loaded = {name: _read_source(again.stems[name]) for name in STEM_NAMES}
            stems = {name: audio for name, (audio, _) in loaded.items()}
            rate = loaded[STEM_NAMES[0]][1]
    else:
        raise InvalidRequest(
            "audio_id",
            engine.name,
            f"the {engine.name} engine renders no stems and no stem model is configured "
            "(REFRAIN_STEM_MODEL_DIR)",
        )
    outputs = []
    with _staging(out_dir) as stage:
        assert stage is not None
        for i, name in enumerate(STEM_NAMES):
            path = stage / f"stem-{name}.wav"
            write_wav(stems[name], rate, path)
            if post.signing is not None:
                provenance = Provenance(
                    title=f"{request.title} ({name})",
                    engine=engine.name,
                    model_version=engine.model_version,
                    seed=request.seed,
                    prompt=request.prompt,
                    share_prompt=post.share_prompt,
                    watermark={"applied": post.watermark is not None, "stem_of_marked_mix": True},
                    extra={"stem": name},
                )
                sign(path, provenance, post.signing, __version__)
            outputs.append(
                SongOutput(
                    index=i,
                    title=f"{request.title} ({name})",
                    seed=request.seed,
                    duration_s=stems[name].shape[1] / rate,
                    lyrics=request.lyrics if name == "vocals" else "",
                    files={"wav": path},
                    metadata={"engine": engine.name, "stem": name, "ai_generated": True},
                )
            )
        on_progress("saving", 1, 1)
    for output in outputs:
        output.files = _placed(output.files, stage, out_dir)
    return outputs
