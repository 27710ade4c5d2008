"""Storage backends: local disk and the S3 API (against a real S3-compatible server, moto_server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.storage import LocalStorage, S3Storage
from tests.utils.s3 import CREDENTIALS, create_bucket, fetch, s3_server


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with s3_server() as url:
        yield url


def _s3(endpoint: str, bucket: str, tmp_path: Path, ttl_s: int = 3600) -> S3Storage:
    create_bucket(endpoint, bucket)
    return S3Storage(
        bucket, endpoint_url=endpoint, url_ttl_s=ttl_s, scratch=tmp_path / "scratch", **CREDENTIALS
    )


def _job_files(folder: Path) -> dict[str, bytes]:
    files = {
        "song.m4a": bytes(range(256)) * 40,
        "song.hls/index.m3u8": b"#EXTM3U\n",
        "song.hls/segment-000.m4s": b"\x00" * 100,
    }
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / ".refrain-partial-x").mkdir()  # staging leftovers are never uploaded
    return files


def test_s3_round_trip_presigned_url_and_range_request(endpoint: str, tmp_path: Path) -> None:
    storage = _s3(endpoint, "songs", tmp_path)
    folder = storage.staging_dir("job1")
    files = _job_files(folder)
    keys = storage.commit(folder, "job1")
    assert sorted(keys.values()) == sorted(f"songs/job1/{name}" for name in files)  # stable, documented
    assert not folder.exists()  # local copies dropped after upload
    assert storage.exists("songs/job1/song.m4a") and not storage.exists("songs/job1/nope.mp3")
    assert storage.read_bytes("songs/job1/song.hls/index.m3u8") == b"#EXTM3U\n"
    url = storage.presigned_url("songs/job1/song.m4a", "My song-1.m4a")
    assert url is not None and "X-Amz-Signature" in url and "X-Amz-Expires=3600" in url
    status, headers, body = fetch(url)
    assert status == 200 and body == files["song.m4a"] and headers["content-type"] == "audio/mp4"
    status, headers, body = fetch(url, {"Range": "bytes=100-199"})
    assert status == 206 and body == files["song.m4a"][100:200]
    assert headers["content-range"] == f"bytes 100-199/{len(files['song.m4a'])}"
    download = tmp_path / "copy.m4a"
    storage.download("songs/job1/song.m4a", download)
    assert download.read_bytes() == files["song.m4a"]
    storage.delete_prefix("songs/job1")
    assert not storage.exists("songs/job1/song.m4a")


def test_s3_presigned_urls_carry_the_configured_lifetime(endpoint: str, tmp_path: Path) -> None:
    # moto_server does not enforce signatures or expiry; S3 and R2 do, from these two parameters
    storage = _s3(endpoint, "expiring", tmp_path, ttl_s=90)
    url = storage.presigned_url("songs/job2/song.m4a")
    assert url is not None and "X-Amz-Expires=90" in url and "X-Amz-Date=" in url


def test_local_keys_match_s3_keys_and_stay_inside_the_root(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    folder = storage.staging_dir("job1")
    folder.mkdir(parents=True, exist_ok=True)
    files = _job_files(folder)
    keys = storage.commit(folder, "job1")
    assert sorted(v for k, v in keys.items() if ".refrain-partial" not in str(k)) == sorted(
        f"songs/job1/{name}" for name in files
    )
    assert storage.presigned_url("songs/job1/song.m4a") is None  # the API serves local files itself
    with pytest.raises(ValueError, match="leaves the storage root"):
        storage.path_for("../outside")
