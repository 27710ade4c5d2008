"""The ACE-Step engine through its real loading code, on a tiny random-weight checkpoint the tests
save in the official diffusers layout: generation, editing, progress, cancelling, LoRAs, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from functions.errors import InvalidRequest
from functions.gen.acestep import AceStepEngine, Cancelled
from functions.gen.registry import available_engines
from functions.request import build_request
from tests.utils.acestep import retag, tiny_acestep, tiny_lora

SR = 48_000


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_acestep(tmp_path_factory.mktemp("acestep") / "turbo")


@pytest.fixture(scope="module")
def loras(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("loras")
    tiny_lora(weights, folder / "bright", seed=1)
    tiny_lora(weights, folder / "dark", seed=2, targets=("to_k",))
    _misfit(weights, folder / "misfit")
    return folder


def _misfit(weights: Path, folder: Path) -> None:
    """A LoRA made for a wider model: its A matrices take twice the inputs this transformer has."""
    from safetensors.torch import load_file, save_file

    made = tiny_lora(weights, folder, rank=4)
    state = load_file(made / "adapter_model.safetensors")
    wider = {k: v.repeat(1, 2).contiguous() if "lora_A" in k else v for k, v in state.items()}
    save_file(wider, made / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def engine(weights: Path, loras: Path) -> Iterator[AceStepEngine]:
    made = AceStepEngine(weights, lora_dir=loras)
    made.load("cpu")
    yield made


def song(**fields: object) -> object:
    base = {"prompt": "folk song about the sea", "lyrics": "[verse]\nhello sea", "duration_s": 10,
            "variations": 1, "seed": 5, "engine": "acestep"}  # fmt: skip
    return build_request(**{**base, **fields})


def test_text2music_makes_the_requested_duration_at_48khz_reproducibly(engine: AceStepEngine) -> None:
    progress: list[tuple[str, int, int]] = []
    first = engine.generate(song(variations=2), on_progress=lambda *p: progress.append(p))  # type: ignore[arg-type]
    assert [s.audio.shape for s in first] == [(2, 10 * SR)] * 2 and first[0].sample_rate_hz == SR
    assert [s.seed for s in first] == [5, 6] and np.abs(first[0].audio - first[1].audio).max() > 1e-3
    assert progress == [("denoising", i, 8) for i in range(9)]  # every step, turbo's 8
    again = engine.generate(song(variations=2))  # type: ignore[arg-type]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(first, again, strict=True))
    meta = first[0].metadata
    assert (meta["engine"], meta["variant"], meta["steps"], meta["guidance"], meta["lora"]) == (
        "acestep", "turbo", 8, 1.0, None,
    )  # fmt: skip
    assert first[0].model_version == "ACE-Step 1.5 turbo"


def test_cancelling_stops_the_denoising_loop(engine: AceStepEngine) -> None:
    steps: list[int] = []

    def cancel_at_three(stage: str, step: int, total: int) -> None:
        steps.append(step)
        if step == 3:
            engine.cancel()

    with pytest.raises(Cancelled):
        engine.generate(song(), on_progress=cancel_at_three)  # type: ignore[arg-type]
    assert max(steps) == 3  # the loop stopped there; its half-made audio was not returned

    class Stop(Exception):
        pass

    def job_cancelled(stage: str, step: int, total: int) -> None:
        if step == 2:
            raise Stop  # as the job service does when the job was cancelled elsewhere

    with pytest.raises(Stop):
        engine.generate(song(), on_progress=job_cancelled)  # type: ignore[arg-type]


def test_repaint_keeps_the_audio_outside_the_window(engine: AceStepEngine) -> None:
    [source] = engine.generate(song(seed=11))  # type: ignore[arg-type]
    clip = source.audio[:, : 4 * SR]
    remade = engine.repaint(song(prompt="stormy sea shanty"), clip, 1.0, 2.0)  # type: ignore[arg-type]
    assert remade.audio.shape == clip.shape
    assert np.array_equal(remade.audio[:, :SR], clip[:, :SR])  # before the window, exactly
    assert np.array_equal(remade.audio[:, 2 * SR :], clip[:, 2 * SR :])  # after it
    assert np.abs(remade.audio[:, SR : 2 * SR] - clip[:, SR : 2 * SR]).max() > 1e-4  # remade inside
    assert remade.metadata["task"] == "repaint" and remade.metadata["section_s"] == [1.0, 2.0]
    with pytest.raises(InvalidRequest, match="section must lie within"):
        engine.repaint(song(), clip, 3.0, 9.0)  # type: ignore[arg-type]


def test_extend_makes_a_longer_song_whose_start_is_the_source(engine: AceStepEngine) -> None:
    [source] = engine.generate(song(seed=12))  # type: ignore[arg-type]
    clip = source.audio[:, : 3 * SR]
    longer = engine.extend(song(), clip, 2.5)  # type: ignore[arg-type]
    assert longer.audio.shape == (2, round(2.5 * SR) + 10 * SR)  # 2.5 s kept + the request's 10 s
    assert np.array_equal(longer.audio[:, : round(2.5 * SR)], clip[:, : round(2.5 * SR)])
    assert longer.metadata["continue_at_s"] == 2.5
    with pytest.raises(InvalidRequest, match="continue_at must lie within"):
        engine.extend(song(), clip, 7.0)  # type: ignore[arg-type]


def test_a_lora_changes_the_output_and_unloading_returns_to_the_base_exactly(engine: AceStepEngine) -> None:
    [base] = engine.generate(song(seed=21))  # type: ignore[arg-type]
    [bright] = engine.generate(song(seed=21, lora="bright"))  # type: ignore[arg-type]
    [half] = engine.generate(song(seed=21, lora="bright", lora_scale=0.5))  # type: ignore[arg-type]
    [dark] = engine.generate(song(seed=21, lora="dark"))  # type: ignore[arg-type]
    assert np.abs(bright.audio - base.audio).max() > 1e-4
    assert np.abs(half.audio - bright.audio).max() > 1e-5 and np.abs(dark.audio - bright.audio).max() > 1e-5
    assert bright.metadata["lora"] == {"name": "bright", "scale": 1.0}
    assert engine.loras is not None and engine.loras.resident == ["bright", "dark"]  # both stay loaded
    [plain] = engine.generate(song(seed=21))  # type: ignore[arg-type]
    assert np.array_equal(plain.audio, base.audio) and plain.metadata["lora"] is None
    [again] = engine.generate(song(seed=21, lora="bright"))  # type: ignore[arg-type]
    assert np.array_equal(again.audio, bright.audio)  # switched back without reloading the base
    engine.loras.unload("bright")
    engine.loras.unload("dark")
    [after] = engine.generate(song(seed=21))  # type: ignore[arg-type]
    assert np.array_equal(after.audio, base.audio)


def test_bad_requests_get_clear_errors(engine: AceStepEngine, weights: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="no LoRA called 'nope'"):
        engine.generate(song(lora="nope"))  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="does not fit this model"):
        engine.generate(song(lora="misfit"))  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="needs the base model"):
        engine.track(song(), np.zeros((2, SR), np.float32), "lego", "drums")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="10–600 s"):
        engine.check(song().model_copy(update={"duration_s": 900.0}))  # type: ignore[attr-defined]
    with pytest.raises(InvalidRequest, match="thinking mode needs the 5 Hz LM planner"):
        engine.generate(song(thinking=True))  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="does not exist"):
        AceStepEngine(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidRequest, match="not an ACE-Step diffusers checkpoint"):
        AceStepEngine(tmp_path / "empty")
    with pytest.raises(InvalidRequest, match="needs sft weights"):
        AceStepEngine(weights, variant="xl-sft")
    with pytest.raises(InvalidRequest, match="unknown ACE-Step variant"):
        AceStepEngine(weights, variant="huge")
    assert AceStepEngine(weights, variant="xl-turbo").model_version == "ACE-Step 1.5 xl-turbo"
    base = AceStepEngine(retag(weights, tmp_path / "base", "base"))
    assert base.variant.name == "base" and "lego" in base.variant.tasks and base.variant.guidance == 7.0


def test_the_engine_is_listed_only_where_its_weights_are(weights: Path, tmp_path: Path) -> None:
    assert available_engines(None) == ["sketch"]
    assert available_engines(tmp_path) == ["sketch"]
    assert available_engines(weights) == ["acestep", "sketch"]


def test_genmusic_runs_the_engine_from_a_weights_folder(weights: Path, tmp_path: Path) -> None:
    from tests.conftest import genmusic

    out = tmp_path / "song.wav"
    flags = ["--engine", "acestep", "--weights", str(weights), "--duration", "10", "--variations", "1"]
    made = genmusic(*flags, "--prompt", "sea shanty", "--seed", "4", "--out", str(out))
    assert out.is_file() and "acestep" in made.stdout
    refused = genmusic(
        "--engine", "acestep", "--prompt", "sea shanty", "--out", str(tmp_path / "x.wav"), check=False
    )
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--weights DIR" in refused.stderr


def test_the_studio_lists_the_engine_only_with_weights(weights: Path, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from tests.utils.studio import quick_settings
    from web.main import create_app

    with TestClient(create_app(quick_settings(tmp_path / "plain"))) as client:
        assert client.get("/api/v1/engines").json()["engines"] == ["sketch"]
        refused = client.post("/api/v1/songs", json={"prompt": "pop", "engine": "acestep"})
        assert refused.status_code == 422 and "no acestep engine" in refused.json()["detail"]
    with TestClient(create_app(quick_settings(tmp_path / "full", acestep_weights=weights))) as client:
        assert client.get("/api/v1/engines").json()["engines"] == ["acestep", "sketch"]


def test_cover_remakes_the_source_in_another_style(engine: AceStepEngine) -> None:
    [source] = engine.generate(song(seed=13))  # type: ignore[arg-type]
    clip = source.audio[:, : 2 * SR]
    remade = engine.cover(song(prompt="jazz trio"), clip, strength=0.6)  # type: ignore[arg-type]
    assert remade.audio.shape == clip.shape and remade.metadata["cover_strength"] == 0.6
    with pytest.raises(InvalidRequest, match="cover strength must be 0–1"):
        engine.cover(song(), clip, strength=2.0)  # type: ignore[arg-type]


def test_the_studio_extends_and_replaces_sections_with_acestep(weights: Path, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from tests.utils.studio import quick_settings, wait_job
    from web.main import create_app

    settings = quick_settings(tmp_path / "data", acestep_weights=weights)
    with TestClient(create_app(settings)) as client:
        body = {"prompt": "sea shanty", "engine": "acestep", "duration_s": 10, "variations": 1, "seed": 8}
        made = client.post("/api/v1/songs", json=body)
        first = wait_job(client, made.json()["id"])
        assert first["status"] == "complete", first
        clip = first["songs"][0]
        extended = client.post(
            f"/api/v1/songs/{clip['id']}/extend", json={"continue_at_s": 6, "duration_s": 10}
        )
        longer = wait_job(client, extended.json()["id"])
        assert longer["status"] == "complete", longer
        assert abs(longer["songs"][0]["duration_s"] - 16.0) < 0.05
        replaced = client.post(
            f"/api/v1/songs/{clip['id']}/replace", json={"start_s": 2, "end_s": 4, "style": "jazz"}
        )
        remade = wait_job(client, replaced.json()["id"])
        assert remade["status"] == "complete", remade
        assert abs(remade["songs"][0]["duration_s"] - 10.0) < 0.05
        assert remade["songs"][0]["metadata"]["section_s"] == [2.0, 4.0]
        outside = client.post(f"/api/v1/songs/{clip['id']}/replace", json={"start_s": 8, "end_s": 30})
        assert outside.status_code == 422 and "within the song" in outside.json()["detail"]
        quick = {"prompt": "pop", "duration_s": 10, "variations": 1}
        sketch = wait_job(client, client.post("/api/v1/songs", json=quick).json()["id"])
        refused = client.post(
            f"/api/v1/songs/{sketch['songs'][0]['id']}/replace", json={"start_s": 1, "end_s": 2}
        )
        assert refused.status_code == 422 and "cannot repaint" in refused.json()["detail"]
