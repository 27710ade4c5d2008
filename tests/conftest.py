"""Shared fixtures: songs made once per session through the real CLI, as a user would make them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

GENMUSIC = [sys.executable, "-m", "local.cli"]


@pytest.fixture(scope="session", autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every genmusic run in the tests keeps its library and dev signing keys in one temporary folder."""
    folder = tmp_path_factory.mktemp("refrain-data")
    previous = os.environ.get("REFRAIN_DATA_DIR")
    os.environ["REFRAIN_DATA_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("REFRAIN_DATA_DIR", None)
    else:
        os.environ["REFRAIN_DATA_DIR"] = previous


def genmusic(
    *args: str, cwd: Path | None = None, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    quiet = [] if args[:1] == ("verify",) else ["--quiet"]
    result = subprocess.run(
        [*GENMUSIC, *quiet, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"genmusic failed ({result.returncode}): {result.stderr}")
    return result


@pytest.fixture(scope="session")
def summer_songs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's example: two 30 s variations of a described song, with stems."""
    folder = tmp_path_factory.mktemp("summer")
    genmusic(
        "--prompt",
        "upbeat synth-pop about summer rain",
        "--duration",
        "30",
        "--seed",
        "11",
        "--stems",
        str(folder / "stems"),
        "--out",
        str(folder / "song.m4a"),
    )
    return folder


@pytest.fixture(scope="session")
def instrumental_song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("instrumental")
    genmusic(
        "--prompt",
        "upbeat synth-pop about summer rain",
        "--duration",
        "20",
        "--seed",
        "11",
        "--variations",
        "1",
        "--instrumental",
        "--stems",
        str(folder / "stems"),
        "--out",
        str(folder / "song.wav"),
    )
    return folder
