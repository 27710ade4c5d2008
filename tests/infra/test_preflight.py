"""`refrain-preflight` names what a hosted deployment lacks, and with R2-style settings (endpoint URL,
region "auto") reaches the bucket, stores and serves a file, and sets the CORS the page needs; all
against a real local S3-compatible server and the local PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra import preflight
from infra.settings import get_settings
from infra.storage import S3Storage
from tests.utils.databases import database_url
from tests.utils.s3 import CREDENTIALS, create_bucket, fetch, s3_server


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_an_empty_configuration_gets_one_line_per_missing_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fresh_settings: None
) -> None:
    monkeypatch.setenv("REFRAIN_ENVIRONMENT", "development")
    assert preflight.main([]) == 2
    lines = capsys.readouterr().err.splitlines()
    named = {line.split(":")[1].strip() for line in lines}
    assert {"REFRAIN_DATABASE_URL", "REFRAIN_S3_BUCKET", "REFRAIN_SECRET_KEY", "REFRAIN_C2PA_KEY_PEM",
            "REFRAIN_PAID_RUNNER", "REFRAIN_PUBLIC_URL", "REFRAIN_STRIPE_SECRET_KEY"} <= named  # fmt: skip
    assert all(line.startswith("refrain-preflight: REFRAIN_") for line in lines)


def test_r2_style_settings_pass_reach_the_bucket_and_set_cors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fresh_settings: None, tmp_path: Path
) -> None:
    with s3_server() as endpoint, database_url("postgresql", tmp_path) as url:
        create_bucket(endpoint, "refrain-songs")
        for name, value in {
            "REFRAIN_ENVIRONMENT": "production",
            "REFRAIN_DATABASE_URL": url,
            "REFRAIN_STORAGE": "s3",
            "REFRAIN_S3_BUCKET": "refrain-songs",
            "REFRAIN_S3_ENDPOINT_URL": endpoint,  # R2: https://<account>.r2.cloudflarestorage.com
            "REFRAIN_S3_ACCESS_KEY_ID": CREDENTIALS["access_key_id"],
            "REFRAIN_S3_SECRET_ACCESS_KEY": CREDENTIALS["secret_access_key"],
            "REFRAIN_SECRET_KEY": "k" * 40,
            "REFRAIN_C2PA_KEY_PEM": "-----BEGIN PRIVATE KEY-----",
            "REFRAIN_C2PA_CHAIN_PEM": "-----BEGIN CERTIFICATE-----",
            "REFRAIN_AUTH": "accounts",
            "REFRAIN_RUNNER": "worker",
            "REFRAIN_PAID_RUNNER": "modal",
            "REFRAIN_PUBLIC_URL": "https://studio.example.com",
            "REFRAIN_STRIPE_SECRET_KEY": "sk_test_x",
            "REFRAIN_STRIPE_WEBHOOK_SECRET": "whsec_x",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("REFRAIN_S3_REGION", raising=False)
        assert preflight.main(["--connect", "--apply-cors"]) == 0, capsys.readouterr().err
        assert "ready to deploy" in capsys.readouterr().out
        storage = preflight._s3(get_settings())
        assert storage.client.meta.region_name == "auto"  # what R2 asks for
        rules = storage.client.get_bucket_cors(Bucket="refrain-songs")["CORSRules"]
        assert rules[0]["AllowedOrigins"] == ["https://studio.example.com"]
        assert "Range" in rules[0]["AllowedHeaders"] and "Content-Range" in rules[0]["ExposeHeaders"]
        _round_trip(storage, tmp_path)

        monkeypatch.setenv("REFRAIN_S3_BUCKET", "no-such-bucket")
        get_settings.cache_clear()
        assert preflight.main(["--connect"]) == 2
        assert "cannot reach no-such-bucket" in capsys.readouterr().err


def _round_trip(storage: S3Storage, tmp_path: Path) -> None:
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "song.m4a").write_bytes(b"\x00" * 4096)
    [key] = storage.commit(folder, "job1").values()
    url = storage.presigned_url(key)
    assert url is not None
    status, headers, body = fetch(url, {"Range": "bytes=0-99"})
    assert status == 206 and len(body) == 100 and headers["content-range"] == "bytes 0-99/4096"
