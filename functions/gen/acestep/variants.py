"""The ACE-Step 1.5 variants Refrain runs, and how each is sampled.

diffusers' pipeline tells turbo from the rest only by the transformer's config (`is_turbo` /
`model_version`), forces guidance off for turbo and keeps one set of defaults for everything; the
per-variant steps, shift and guidance, and which editing tasks a variant may do, are ours.
"""

from __future__ import annotations

from dataclasses import dataclass

EDIT_TASKS = ("extend", "repaint", "cover")  # every variant
TRACK_TASKS = ("lego", "extract", "complete")  # add / extract a track: base models only


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # turbo | sft | base: the transformer config's model_version
    steps: int
    shift: float
    guidance: float  # 1.0: no classifier-free guidance (turbo is distilled without it)
    thinking: bool  # the 5 Hz LM planner on by default
    size: str  # "xl" (4B DiT) | "2b"

    @property
    def tasks(self) -> tuple[str, ...]:
        return ("text2music", *EDIT_TASKS, *(TRACK_TASKS if self.kind == "base" else ()))


VARIANTS = {
    v.name: v
    for v in (
        Variant("xl-turbo", "turbo", steps=8, shift=3.0, guidance=1.0, thinking=False, size="xl"),
        Variant("xl-sft", "sft", steps=50, shift=3.0, guidance=7.0, thinking=True, size="xl"),
        Variant("turbo", "turbo", steps=8, shift=3.0, guidance=1.0, thinking=False, size="2b"),
        Variant("sft", "sft", steps=50, shift=3.0, guidance=7.0, thinking=True, size="2b"),
        Variant("base", "base", steps=50, shift=3.0, guidance=7.0, thinking=True, size="2b"),
    )
}
DEFAULT_VARIANT = "xl-turbo"
