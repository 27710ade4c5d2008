"""The 5 Hz LM planner on a tiny random Qwen3 with audio-code tokens, through both backends
(transformers; mlx-lm, which installs on Linux CPU): constrained codes, validated plans, malformed
output rejected, and the engine conditioned on the codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.gen.acestep import AceStepEngine
from functions.gen.acestep.planner import PlanRejected, load_planner, parse_metadata, validate
from functions.request import build_request
from tests.utils.acestep import tiny_acestep
from tests.utils.planner import tiny_planner

GOOD = (
    "<think>\nbpm: 96\ncaption: A calm folk song\n  with strings\nduration: 12\nkeyscale: F# minor\n"
    "language: en\ntimesignature: 4\n</think>"
)


@pytest.fixture(scope="module")
def planner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_planner(tmp_path_factory.mktemp("planner") / "lm")


def test_a_well_formed_plan_passes_and_malformed_ones_are_rejected() -> None:
    fields = parse_metadata(GOOD)
    plan = validate(fields, "<|audio_code_5|><|audio_code_63|><|im_end|>", codebook=64)
    assert (plan.bpm, plan.duration, plan.keyscale, plan.timesignature, plan.codes) == (
        96,
        12,
        "F# minor",
        "4",
        [5, 63],
    )
    assert plan.caption == "A calm folk song with strings"
    assert plan.codes_text() == "<|audio_code_5|><|audio_code_63|>"
    bad = [
        (GOOD.replace("bpm: 96", "bpm: fast"), "<|audio_code_1|>", "whole numbers"),
        (GOOD.replace("bpm: 96", "bpm: 999"), "<|audio_code_1|>", "outside 30–300"),
        (GOOD.replace("F# minor", "H major"), "<|audio_code_1|>", "not a key"),
        (GOOD.replace("timesignature: 4", "timesignature: 5"), "<|audio_code_1|>", "time signature"),
        (GOOD, "<|audio_code_1|> la la", "something other than audio codes"),
        (GOOD, "<|audio_code_64|>", "outside the codebook"),
        (GOOD, "<|im_end|>", "no audio codes"),
    ]
    for text, codes, reason in bad:
        with pytest.raises(PlanRejected, match=reason):
            validate(parse_metadata(text), codes, codebook=64)
    with pytest.raises(PlanRejected, match="no complete <think> block"):
        parse_metadata("bpm: 96")


@pytest.mark.parametrize("backend", ["transformers", "mlx"])
def test_both_backends_make_exactly_five_valid_codes_a_second(planner_dir: Path, backend: str) -> None:
    planner = load_planner(planner_dir, "cpu", backend=backend)
    assert planner.codebook == 64
    plan = planner.plan(
        "calm folk", "[verse]\nhello", 10, seed=3, bpm=96, key="F# minor", timesignature="4/4"
    )
    assert len(plan.codes) == 50 and all(0 <= c < 64 for c in plan.codes)
    assert (plan.bpm, plan.keyscale, plan.duration, plan.language) == (96, "F# minor", 10, "en")
    again = planner.plan(
        "calm folk", "[verse]\nhello", 10, seed=3, bpm=96, key="F# minor", timesignature="4/4"
    )
    assert again.codes == plan.codes  # the seed decides, within a backend


@pytest.mark.parametrize("backend", ["transformers", "mlx"])
def test_random_metadata_is_rejected_not_passed_on(planner_dir: Path, backend: str) -> None:
    planner = load_planner(planner_dir, "cpu", backend=backend)
    with pytest.raises(PlanRejected):
        planner.plan("calm folk", "[verse]\nhello", 10, seed=4)  # an untrained model writes no valid plan


def test_the_engine_follows_the_plan_or_goes_on_without_a_rejected_one(
    planner_dir: Path, tmp_path: Path
) -> None:
    engine = AceStepEngine(tiny_acestep(tmp_path / "turbo"), planner_weights=planner_dir)
    engine.load("cpu")
    fields = {"prompt": "calm folk", "lyrics": "[verse]\nhello", "duration_s": 10, "variations": 1, "seed": 2}
    metas = {"bpm": 96, "key": "F# minor", "time_signature": "4/4"}
    request = build_request(**fields, **metas, thinking=True, engine="acestep")
    progress: list[tuple[str, int, int]] = []
    [song] = engine.generate(request, on_progress=lambda *p: progress.append(p))
    assert song.audio.shape == (2, 10 * 48_000)
    assert song.metadata["thinking"] is True and song.metadata["plan"]["codes"] == 50
    assert ("planning", 1, 1) in progress
    unsure = request.model_copy(update={"bpm": None, "key": None})
    [song] = engine.generate(unsure)
    assert song.metadata["thinking"] is False and "plan_rejected" in song.metadata
