"""The 5 Hz LM planner ("thinking" mode): ACE-Step's Qwen3-based language model turns a caption and
lyrics into metadata (BPM, key, duration, time signature, language, a refined caption) and then into
audio codes (`<|audio_code_N|>`, five a second) that the DiT is conditioned on.

Two phases, as upstream (ace-step/ACE-Step-1.5 @ f30aee4, acestep/llm_inference.py):
1. the chat prompt (system "# Instruction …", user "# Caption …\\n\\n# Lyric …") → a `<think>` block of
   `key: value` lines. Skipped when the request gives BPM, key, duration and time signature itself.
2. the same prompt with that block as the assistant's turn → exactly `duration × 5` codes.
Decoding is constrained in both phases (no codes inside the metadata; only codes, then the end, after
it), and everything is validated before it reaches the pipeline: malformed metadata or codes raise
`PlanRejected`, never pass on.

Backends: mlx-lm on Apple silicon (and on Linux CPU, where mlx installs too), transformers elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.errors import RefrainError

INSTRUCTION = "Generate audio semantic tokens based on the given conditions:"
CODES_PER_SECOND = 5
CODE_RE = re.compile(r"<\|audio_code_(\d+)\|>")
KEY_RE = re.compile(r"^[A-G](#|b|♯|♭)? (major|minor)$")
TEMPERATURE, TOP_P = 0.85, 0.9  # upstream's defaults
MAX_META_TOKENS = 512


class PlanRejected(RefrainError):
    """The planner's output is not a well-formed plan; nothing of it reaches the pipeline."""


@dataclass(frozen=True)
class Plan:
    bpm: int
    duration: int
    keyscale: str
    timesignature: str
    language: str
    caption: str
    codes: list[int] = field(default_factory=list)

    def codes_text(self) -> str:
        return "".join(f"<|audio_code_{c}|>" for c in self.codes)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "bpm": self.bpm, "duration_s": self.duration, "keyscale": self.keyscale,
            "timesignature": self.timesignature, "language": self.language, "caption": self.caption,
            "codes": len(self.codes),
        }  # fmt: skip


def parse_metadata(text: str) -> dict[str, str]:
    """The `key: value` lines of a `<think>` block (indented lines continue the previous value)."""
    if "<think>" not in text or "</think>" not in text:
        raise PlanRejected("the planner wrote no complete <think> block")
    body = text.split("<think>", 1)[1].split("</think>", 1)[0]
    fields: dict[str, str] = {}
    last = None
    for line in body.splitlines():
        if not line.strip():
            continue
        if line.startswith("  ") and last:
            fields[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise PlanRejected(f"the planner wrote a line that is not 'name: value': {line[:60]!r}")
        last = name.strip()
        fields[last] = value.strip()
    return fields


def validate(fields: dict[str, str], codes_text: str, codebook: int) -> Plan:
    """A Plan from the planner's fields and codes, or PlanRejected saying what is wrong."""
    try:
        bpm, duration = int(fields["bpm"]), int(fields["duration"])
    except (KeyError, ValueError) as exc:
        raise PlanRejected(f"the plan's bpm / duration are missing or not whole numbers ({exc})") from None
    if not 30 <= bpm <= 300:
        raise PlanRejected(f"the plan's bpm {bpm} is outside 30–300")
    if not 10 <= duration <= 600:
        raise PlanRejected(f"the plan's duration {duration} s is outside 10–600 s")
    keyscale = fields.get("keyscale", "")
    if not KEY_RE.match(keyscale):
        raise PlanRejected(f"the plan's key {keyscale!r} is not a key like 'C major'")
    signature = fields.get("timesignature", "4").removesuffix("/4")
    if signature not in ("2", "3", "4", "6"):
        raise PlanRejected(f"the plan's time signature {signature!r} is not 2, 3, 4 or 6")
    language = fields.get("language", "unknown")
    if not re.fullmatch(r"[a-z]{2,3}|unknown", language):
        raise PlanRejected(f"the plan's language {language!r} is not a language code")
    leftover = CODE_RE.sub("", codes_text).replace("<|im_end|>", "").replace("<|endoftext|>", "").strip()
    if leftover:
        raise PlanRejected(f"the planner wrote something other than audio codes: {leftover[:60]!r}")
    codes = [int(n) for n in CODE_RE.findall(codes_text)]
    if not codes:
        raise PlanRejected("the planner wrote no audio codes")
    if max(codes) >= codebook:
        raise PlanRejected(f"audio code {max(codes)} is outside the codebook (0–{codebook - 1})")
    return Plan(bpm, duration, keyscale, signature, language, fields.get("caption", "").strip(), codes)


class Planner:
    """Prompts, constraints and validation; a backend only generates token ids."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        vocab = backend.vocab()
        self.code_ids = {token_id: int(m.group(1)) for token, token_id in vocab.items()
                         if (m := CODE_RE.fullmatch(token))}  # fmt: skip
        if not self.code_ids:
            raise PlanRejected(
                "the planner's tokenizer has no <|audio_code_N|> tokens: not an ACE-Step 5 Hz LM"
            )
        self.codebook = max(self.code_ids.values()) + 1
        self.think_end = vocab.get("</think>")
        self.stops = [i for i in (vocab.get("<|im_end|>"), backend.eos_id()) if i is not None]
        codes = frozenset(self.code_ids)
        # the constraint's states: (allowed ids or None for all, banned ids)
        self.rules: dict[str, Rule] = {
            "meta": (None, codes),  # metadata: anything but audio codes
            "codes": (codes, frozenset()),  # after it: only audio codes …
            "end": (frozenset(self.stops[:1]), frozenset()),  # … until there are enough, then the end
        }

    def plan(
        self,
        caption: str,
        lyrics: str,
        duration_s: float,
        seed: int,
        *,
        bpm: float | None = None,
        key: str | None = None,
        timesignature: str | None = None,
        language: str = "en",
    ) -> Plan:
        messages = [
            {"role": "system", "content": f"# Instruction\n{INSTRUCTION}\n\n"},
            {"role": "user", "content": f"# Caption\n{caption}\n\n# Lyric\n{lyrics}\n"},
        ]
        duration = round(min(max(duration_s, 10), 600))
        given = {
            "bpm": bpm and str(round(bpm)),
            "keyscale": key,
            "duration": str(duration),
            "timesignature": (timesignature or "").split("/")[0] or None,
            "language": language,
        }
        if all(given.values()):  # everything is known: no metadata phase (as upstream)
            fields = {k: str(v) for k, v in given.items()} | {"caption": caption}
        else:
            prompt = self.backend.render(messages, add_generation_prompt=True)
            stops = [self.think_end] if self.think_end is not None else self.stops
            text = self.backend.generate(
                prompt, lambda generated: "meta", self.rules, MAX_META_TOKENS, seed, stops
            )
            fields = parse_metadata(text if text.lstrip().startswith("<think>") else "<think>" + text)
            fields.update({k: str(v) for k, v in given.items() if v and k != "language"})
            fields.setdefault("caption", caption)
        kept = ("bpm", "caption", "duration", "keyscale", "language", "timesignature")
        lines = "\n".join(f"{k}: {fields[k]}" for k in sorted(fields) if k in kept)
        wanted = duration * CODES_PER_SECOND  # the request's duration is always the plan's (see `given`)
        prompt = self.backend.render(
            [*messages, {"role": "assistant", "content": f"<think>\n{lines}\n</think>"}],
            add_generation_prompt=False,
        )

        def state(generated: list[int]) -> str:
            return "codes" if len(generated) < wanted else "end"  # only codes are possible before the end

        codes = self.backend.generate(prompt, state, self.rules, wanted + 1, seed, self.stops)
        return validate(fields, codes, self.codebook)


Rule = tuple[frozenset[int] | None, frozenset[int]]
StateFn = Callable[[list[int]], str]


class Backend:
    """Generates text under a constraint: `state(generated ids)` names one of `rules`, each
    (allowed ids or None for all, banned ids); the masks are built once per state. Both backends
    hold a Hugging Face tokenizer (mlx-lm wraps one), which renders the chat prompts."""

    tokenizer: Any

    def vocab(self) -> dict[str, int]:
        return dict(self.tokenizer.get_vocab())

    def eos_id(self) -> int | None:
        return self.tokenizer.eos_token_id

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        return text if add_generation_prompt or text.endswith("\n") else text + "\n"

    def generate(
        self,
        prompt: str,
        state: StateFn,
        rules: dict[str, Rule],
        max_tokens: int,
        seed: int,
        stops: list[int],
    ) -> str:
        raise NotImplementedError


class TransformersBackend(Backend):
    def __init__(self, folder: Path, device: str = "cpu") -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer: Any = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32  # fp32 on MPS, as upstream
        model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, local_files_only=True)
        self.model = model.to(device).eval()
        self.device = device

    def generate(
        self,
        prompt: str,
        state: StateFn,
        rules: dict[str, Rule],
        max_tokens: int,
        seed: int,
        stops: list[int],
    ) -> str:
        import torch
        from transformers import LogitsProcessor, LogitsProcessorList

        ids = self.tokenizer(prompt, return_tensors="pt").input_ids.to(self.device)
        start = ids.shape[1]

        penalties: dict[str, Any] = {}

        class Constrain(LogitsProcessor):
            def __call__(self, input_ids: Any, scores: Any) -> Any:
                name = state(input_ids[0, start:].tolist())
                if name not in penalties:
                    penalties[name] = _penalty(rules[name], scores.shape[-1], lambda v: torch.tensor(
                        v, dtype=scores.dtype, device=scores.device))  # fmt: skip
                return scores + penalties[name]

        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(
                ids, do_sample=True, temperature=TEMPERATURE, top_p=TOP_P, top_k=0, max_new_tokens=max_tokens,
                logits_processor=LogitsProcessorList([Constrain()]), eos_token_id=stops,
                pad_token_id=self.tokenizer.pad_token_id,
            )  # fmt: skip
        return str(self.tokenizer.decode(out[0, start:], skip_special_tokens=False))


class MlxBackend(Backend):
    """mlx-lm reads the same Hugging Face folder directly (no conversion)."""

    def __init__(self, folder: Path) -> None:
        from mlx_lm import load

        loaded: Any = load(str(folder))
        self.model, self.tokenizer = loaded[0], loaded[1]

    def generate(
        self,
        prompt: str,
        state: StateFn,
        rules: dict[str, Rule],
        max_tokens: int,
        seed: int,
        stops: list[int],
    ) -> str:
        import mlx.core as mx
        from mlx_lm.generate import stream_generate
        from mlx_lm.sample_utils import make_sampler

        ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        generated: list[int] = []

        penalties: dict[str, Any] = {}

        def constrain(tokens: Any, logits: Any) -> Any:
            # `tokens` holds the prompt and what was sampled so far (mlx-lm samples a step ahead of
            # what it yields, so the stream is no guide to where the constraint is)
            name = state(tokens[len(ids) :].tolist() if tokens is not None else [])
            if name not in penalties:
                penalties[name] = _penalty(
                    rules[name], logits.shape[-1], lambda v: mx.array(v, dtype=logits.dtype)
                )
            return logits + penalties[name]

        mx.random.seed(seed)
        sampler = make_sampler(temp=TEMPERATURE, top_p=TOP_P)
        for response in stream_generate(self.model, self.tokenizer, prompt=ids, max_tokens=max_tokens,
                                        sampler=sampler, logits_processors=[constrain]):  # fmt: skip
            generated.append(int(response.token))
            if response.token in stops:
                break
        return str(self.tokenizer.decode(generated))


def _penalty(rule: Rule, size: int, array: Callable[[Any], Any]) -> Any:
    """0 where a token may come next, -inf where it may not (added to the logits)."""
    import numpy as np

    allowed, banned = rule
    values = np.zeros(size, np.float32) if allowed is None else np.full(size, -np.inf, np.float32)
    if allowed is not None:
        values[[i for i in allowed if i < size]] = 0.0
    values[[i for i in banned if i < size]] = -np.inf
    return array(values)


def load_planner(folder: Path, device: str = "cpu", backend: str | None = None) -> Planner:
    """The planner from a local folder: mlx-lm on Apple silicon (`mps`), transformers elsewhere."""
    if not (folder / "config.json").is_file():
        raise PlanRejected(f"{folder} is not a 5 Hz LM folder (no config.json)")
    backend = backend or ("mlx" if device == "mps" else "transformers")
    if backend == "mlx":
        return Planner(MlxBackend(folder))
    return Planner(TransformersBackend(folder, device))
