"""`genmusic --runner modal`: the request goes to the deployed Engine class and the files come back
under the names --out gives; without Modal it is one line and exit 1. The remote call is replaced
by the same body run here (PaidWorker), so the request shape and the saving are real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.settings import Settings
from local import cli
from local.paid import PaidWorker


class _Remote:
    def __init__(self, worker: PaidWorker, calls: list[tuple[dict[str, Any], tuple[str, ...]]]) -> None:
        self.worker, self.calls = worker, calls

    @property
    def generate(self) -> Any:
        outer = self

        class Method:
            def remote(self, fields: dict[str, Any], formats: tuple[str, ...]) -> dict[str, bytes]:
                outer.calls.append((fields, formats))
                return outer.worker.generate(fields, formats)

        return Method()


def test_genmusic_runs_on_the_deployed_paid_tier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {"REFRAIN_WATERMARK": "none", "REFRAIN_SIGN": "false"}.items():
        monkeypatch.setenv(name, value)
    cli.get_settings.cache_clear()
    calls: list[tuple[dict[str, Any], tuple[str, ...]]] = []
    worker = PaidWorker(Settings(), "cpu")
    monkeypatch.setattr(cli, "modal_engine", lambda app_name: _Remote(worker, calls))
    out = tmp_path / "takes" / "rain.wav"
    code = cli.run(["--runner", "modal", "--prompt", "summer rain", "--duration", "10", "--seed", "7",
                    "--variations", "2", "--out", str(out)])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["rain-2.wav", "rain.wav"]
    ((fields, formats),) = calls
    assert (
        formats == ("wav",) and fields["seed"] == 7 and fields["variations"] == 2 and "engine" not in fields
    )
    assert capsys.readouterr().out.split() == [str(out), str(out.parent / "rain-2.wav")]
    cli.get_settings.cache_clear()


def test_without_modal_it_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(app_name: str) -> Any:
        raise ConnectionError("no route to api.modal.com")

    monkeypatch.setattr(cli, "modal_engine", unreachable)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--runner", "modal", "--prompt", "pop", "--out", str(tmp_path / "x.m4a")])
    assert exit_.value.code == 1
