"""genmusic: make finished songs from the command line, in-process, on this machine."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from tqdm import tqdm

from functions.errors import InvalidRequest, MissingTool, RefrainError, UnknownEngine
from functions.gen import get_engine, known_engines
from functions.pipeline import PostOptions, make_songs
from functions.post.credentials import describe, verify
from functions.post.encode import FORMATS, decode
from functions.post.watermark import detect
from functions.request import build_request
from infra.settings import get_settings
from local.device import pick_device

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"genmusic: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="genmusic", description="Make finished songs (mastered, encoded) from a prompt or lyrics."
    )
    p.add_argument("--prompt", default="", help='song description, e.g. "rainy-day synth-pop, female vocals"')
    p.add_argument(
        "--lyrics", default="", help="lyrics text with [verse]/[chorus] tags, a file path, or - for stdin"
    )
    p.add_argument("--style", default="", help="comma-separated style tags")
    p.add_argument("--negative", default="", help="comma-separated tags to avoid")
    p.add_argument("--title", default="")
    p.add_argument("--duration", type=float, default=30.0, help="seconds, 10–240 (default 30)")
    p.add_argument("--instrumental", action="store_true", help="no vocals")
    p.add_argument("--seed", type=int, default=None, help="same seed and request -> identical audio")
    p.add_argument("--variations", type=int, default=2, help="songs per request, 1–4 (default 2)")
    p.add_argument("--bpm", type=float, default=None)
    p.add_argument("--key", default=None, help='e.g. "A minor", "F#"')
    p.add_argument("--time-signature", default=None, help="4/4 or 3/4")
    p.add_argument("--engine", default=None, help=f"song engine (known: {', '.join(known_engines())})")
    p.add_argument(
        "--weights", type=Path, default=None, help="ACE-Step 1.5 checkpoint folder (diffusers layout)"
    )
    p.add_argument("--variant", default=None, help="ACE-Step variant: xl-turbo, xl-sft, turbo, sft, base")
    p.add_argument("--language", default="en", help="the vocals' language, e.g. en, es, ja (ACE-Step)")
    p.add_argument("--lora", default=None, help="a LoRA from REFRAIN_LORA_DIR (ACE-Step)")
    p.add_argument("--lora-scale", type=float, default=1.0, help="0–2 (default 1)")
    p.add_argument("--think", action=argparse.BooleanOptionalAction, default=None,
                   help="plan with the 5 Hz LM first (ACE-Step; default: the variant's)")  # fmt: skip
    p.add_argument("--lufs", type=float, default=None, help="loudness target, -14 (default) or -16")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or mps")
    p.add_argument(
        "--runner",
        choices=["local", "modal"],
        default="local",
        help="local: this machine (default); modal: the deployed paid tier (needs a Modal token)",
    )
    p.add_argument(
        "--stems", type=Path, default=None, metavar="DIR", help="also write vocals/drums/bass/other wav"
    )
    p.add_argument("--out", type=Path, required=True, help="output file: song.m4a, song.mp3 or song.wav")
    p.add_argument(
        "--private-prompt",
        action="store_true",
        help="content credentials record only a hash of the prompt, not its text",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def build_verify_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="genmusic verify", description="Show what a file's content credentials say.")
    p.add_argument("file", type=Path)
    p.add_argument(
        "--trust-anchor",
        type=Path,
        default=None,
        help="PEM root to trust (default: this machine's development root, if any)",
    )
    return p


def verify_file(argv: Sequence[str]) -> int:
    args = build_verify_parser().parse_args(argv)
    if not args.file.is_file():
        raise InvalidRequest("file", str(args.file), f"no such file: {args.file}")
    anchor_path = args.trust_anchor or get_settings().data_dir / "c2pa" / "root.pem"
    anchor = anchor_path.read_bytes() if anchor_path.is_file() else None
    if args.trust_anchor is not None and anchor is None:
        raise InvalidRequest("trust_anchor", str(args.trust_anchor), f"no such file: {args.trust_anchor}")
    report = verify(args.file, anchor)
    print(f"{args.file}")
    print(describe(report))
    backend = get_settings().watermark_backend()
    if backend is not None:
        found = detect(backend, *decode(args.file))
        payload = f", message {found.message}" if found.message is not None else ""
        verdict = "present" if found.present else "not found"
        print(f"watermark ({found.backend}): {verdict}, confidence {found.confidence:.2f}{payload}")
    if report.state == "Trusted":
        print(
            f"  trusted through: {anchor_path}"
            + ("" if args.trust_anchor else " (this machine's development root)")
        )
    return 0 if report.state in ("Valid", "Trusted", "None") else 1


def _read_lyrics(value: str) -> str:
    if value == "-":
        return sys.stdin.read()
    if value and "\n" not in value and "\\n" not in value and not value.lstrip().startswith("["):
        path = Path(value).expanduser()
        try:
            if path.is_file():
                return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidRequest("lyrics", value, f"cannot read lyrics file {value}: {exc}") from None
    return value.replace("\\n", "\n")


class _ProgressBar:
    """One tqdm bar whose label follows the pipeline's stage."""

    def __init__(self, enabled: bool) -> None:
        self._bar = tqdm(
            total=1,
            disable=not enabled,
            bar_format="{desc:<18} {bar} {n_fmt}/{total_fmt} {elapsed}",
            leave=False,
            file=sys.stderr,
        )

    def __call__(self, stage: str, step: int, total: int) -> None:
        self._bar.set_description_str(stage)
        self._bar.total = max(total, 1)
        self._bar.n = step
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def run(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["verify"]:
        return verify_file(argv[1:])
    args = build_parser().parse_args(argv)
    settings = get_settings()
    suffix = args.out.suffix.lower().lstrip(".")
    if suffix not in FORMATS or suffix == "preview.mp3":
        raise InvalidRequest(
            "out", str(args.out), f"--out must end in .{', .'.join(FORMATS)} (got {args.out.name})"
        )
    request = build_request(
        prompt=args.prompt,
        lyrics=_read_lyrics(args.lyrics),
        style_tags=args.style,
        negative_tags=args.negative,
        title=args.title,
        instrumental=args.instrumental,
        duration_s=args.duration,
        variations=args.variations,
        bpm=args.bpm,
        key=args.key,
        time_signature=args.time_signature,
        engine=args.engine or settings.default_engine,
        language=args.language,
        lora=args.lora,
        lora_scale=args.lora_scale,
        thinking=args.think,
        **({"seed": args.seed} if args.seed is not None else {}),
    )
    if args.runner == "modal":
        fields = request.model_dump(mode="json", exclude=None if args.engine else {"engine"})
        for path in run_on_modal(fields, args.out, suffix, settings.modal_app):
            print(path)
        return 0
    if args.weights is not None or args.variant is not None:
        updates = {
            "acestep_weights": args.weights or settings.acestep_weights,
            "acestep_variant": args.variant,
        }
        settings = settings.model_copy(update=updates)
    if request.engine not in known_engines():  # fail before loading the watermark model and engine
        raise UnknownEngine(request.engine, known_engines())
    if request.engine not in settings.local_engines():
        raise InvalidRequest(
            "engine", request.engine, "the acestep engine needs its weights: --weights DIR (an ACE-Step 1.5 "
            "diffusers checkpoint folder with model_index.json)",
        )  # fmt: skip
    device = pick_device(args.device or settings.device)
    post = PostOptions(
        target_lufs=args.lufs if args.lufs is not None else settings.target_lufs,
        ceiling_dbtp=settings.true_peak_dbtp,
        formats=(suffix,),
        ffmpeg=settings.ffmpeg,
        signing=settings.signing_material(),
        watermark=settings.watermark_backend(device),
        separator=settings.separator(device) if args.stems is not None else None,
        share_prompt=settings.share_prompt and not args.private_prompt,
    )
    if not -30.0 <= post.target_lufs <= -5.0:
        raise InvalidRequest("lufs", post.target_lufs, f"--lufs {post.target_lufs} is outside -30…-5")
    engine = get_engine(request.engine, device, **settings.engine_options())
    bar = _ProgressBar(enabled=not args.quiet)
    try:
        outputs = make_songs(
            request,
            args.out.parent if str(args.out.parent) else Path("."),
            base_name=args.out.stem,
            post=post,
            stems_dir=args.stems,
            engine=engine,
            lyricist=settings.make_lyricist(device),
            on_progress=bar,
        )
    finally:
        bar.close()
    for song in outputs:
        meta = song.metadata
        print(
            f"{song.files[suffix]}  {song.duration_s:.1f} s  {meta['integrated_lufs']:.1f} LUFS  "
            f'{meta["true_peak_dbtp"]:.1f} dBTP  seed {song.seed}  "{song.title}"  '
            f"({meta['engine']}: {meta.get('genre', '?')}, {meta.get('bpm', '?')} bpm, "
            f"{meta.get('key', '?')}, "
            f"vocal {meta.get('vocal', '?')})"
        )
        for name, path in song.stems.items():
            print(f"  stem {name}: {path}")
    return 0


def modal_engine(app_name: str) -> Any:
    """The deployed paid tier's engine class (modal_app.py), looked up by name."""
    import modal

    return modal.Cls.from_name(app_name, "Engine")()


def run_on_modal(fields: dict[str, Any], out: Path, suffix: str, app_name: str) -> list[Path]:
    """Make the songs on the deployed paid tier; save them as --out names them (song.m4a, song-2.m4a)."""
    from local.paid import save_songs

    try:
        files = modal_engine(app_name).generate.remote(fields, (suffix,))
    except InvalidRequest:
        raise
    except Exception as exc:  # no token, no network, no deployed app: Modal says which
        raise RefrainError(
            f"the paid tier on Modal could not make the song: {type(exc).__name__}: {exc}"
        ) from exc
    renamed = {out.stem + name.removeprefix("song"): data for name, data in files.items()}
    return save_songs(renamed, out.parent if str(out.parent) else Path("."))


def main(argv: Sequence[str] | None = None) -> NoReturn:
    try:
        code = run(argv)
    except InvalidRequest as exc:
        print(f"genmusic: error: {exc.message}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    except (MissingTool, RefrainError) as exc:
        print(f"genmusic: error: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("genmusic: interrupted; nothing was written", file=sys.stderr)
        code = 130
    except Exception as exc:  # a bug, not bad input: still one line, and a way to see more
        print(f"genmusic: internal error: {type(exc).__name__}: {exc} (please report it)", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
