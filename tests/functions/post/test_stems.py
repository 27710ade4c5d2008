"""HTDemucs through demucs' real loader on a tiny random model saved the way demucs saves models."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from functions.errors import InvalidRequest, MissingTool
from functions.gen.sketch import SketchEngine
from functions.pipeline import PostOptions, finish_song
from functions.post.credentials import make_dev_chain, verify
from functions.post.stems import get_separator
from functions.request import build_request
from tests.utils.audio import ffprobe_duration_s

RATE = 44100


@pytest.fixture(scope="module")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from demucs.htdemucs import HTDemucs
    from demucs.states import serialize_model

    repo = tmp_path_factory.mktemp("demucs")
    torch.manual_seed(0)
    model = HTDemucs(sources=["drums", "bass", "other", "vocals"], channels=8)
    torch.save(serialize_model(model, OmegaConf.create({}), half=False), repo / "tiny.th")
    return repo


@pytest.fixture(scope="module")
def song():  # type: ignore[no-untyped-def]
    engine = SketchEngine()
    engine.load()
    return engine.generate(
        build_request(prompt="pop", instrumental=True, duration_s=10, seed=1, variations=1),
        on_progress=lambda *_: None,
    )[0]


def test_separator_loads_offline_and_returns_four_stems(model_repo: Path, song) -> None:  # type: ignore[no-untyped-def]
    separator = get_separator("tiny", model_repo)
    stems = separator.separate(song.audio[:, : RATE * 3], RATE)
    assert set(stems) == {"vocals", "drums", "bass", "other"}
    assert all(
        s.shape == (2, RATE * 3) and s.dtype == np.float32 and np.isfinite(s).all() for s in stems.values()
    )


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MissingTool, match="never downloaded"):
        get_separator("htdemucs", tmp_path)


def test_engine_without_stems_gets_separated_signed_zipped_stems(
    model_repo: Path, song, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    no_stems = replace(song, stems=None)
    request = build_request(prompt="pop", instrumental=True, duration_s=10, seed=1, variations=1)
    material = make_dev_chain()
    post = PostOptions(formats=("m4a",), signing=material, separator=get_separator("tiny", model_repo))
    (tmp_path / "out").mkdir()
    (tmp_path / "stems").mkdir()
    output = finish_song(no_stems, 0, request, "song", post, tmp_path / "out", tmp_path / "stems", "none")
    assert set(output.stems) == {"vocals", "drums", "bass", "other", "zip"}
    for name in ("vocals", "drums", "bass", "other"):
        assert abs(ffprobe_duration_s(output.stems[name]) - 10.0) < 0.05
        assert verify(output.stems[name], material.root_pem).state == "Trusted"
    with zipfile.ZipFile(output.stems["zip"]) as archive:
        assert sorted(archive.namelist()) == sorted(
            f"song-{n}.wav" for n in ("vocals", "drums", "bass", "other")
        )


def test_stems_need_a_model_when_the_engine_has_none(song, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    request = build_request(prompt="pop", instrumental=True, duration_s=10, seed=1, variations=1)
    with pytest.raises(InvalidRequest, match="REFRAIN_STEM_MODEL_DIR"):
        finish_song(
            replace(song, stems=None), 0, request, "s", PostOptions(formats=("m4a",)), tmp_path, tmp_path, "x"
        )
