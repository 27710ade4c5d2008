"""Where song files live: one interface, two backends.

Object keys are stable and the same on every backend:

    songs/<job id>/<file>          song.m4a, song-2.mp3, song.hls/index.m3u8, song-vocals.wav, …

A worker writes a job's files into `staging_dir(job_id)` and hands the folder to `commit`: on local
disk that folder already is the destination; on S3 its files are uploaded under the job's prefix.
"""

from __future__ import annotations

import mimetypes
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

CONTENT_TYPES = {
    ".m4a": "audio/mp4",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".mp4": "audio/mp4",
    ".zip": "application/zip",
}


def content_type(name: str) -> str:
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def job_prefix(job_id: str) -> str:
    return f"songs/{job_id}"


def job_files(folder: Path, job_id: str) -> dict[Path, str]:
    """Every file a job left in `folder` (hidden staging leftovers aside) and its object key."""
    root = folder.resolve()
    return {
        path: f"{job_prefix(job_id)}/{path.resolve().relative_to(root).as_posix()}"
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    }


class Storage(Protocol):
    name: str

    def staging_dir(self, job_id: str) -> Path: ...

    def commit(self, folder: Path, job_id: str) -> dict[Path, str]: ...

    def exists(self, key: str) -> bool: ...

    def read_bytes(self, key: str) -> bytes: ...

    def download(self, key: str, path: Path) -> None: ...

    def delete_prefix(self, prefix: str) -> None: ...

    def delete(self, key: str) -> None: ...

    def local_path(self, key: str) -> Path | None: ...

    def presigned_url(self, key: str, filename: str | None = None) -> str | None: ...


class LocalStorage:
    """Files under `root`; the API serves them itself (with HTTP range requests)."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"storage key {key!r} leaves the storage root")
        return path

    def song_dir(self, job_id: str) -> Path:
        return self.root / job_prefix(job_id)

    def staging_dir(self, job_id: str) -> Path:
        """The job's own folder, emptied: a retried job starts without an earlier attempt's files."""
        folder = self.song_dir(job_id)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def commit(self, folder: Path, job_id: str) -> dict[Path, str]:
        return job_files(folder, job_id)  # already in place

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def read_bytes(self, key: str) -> bytes:
        return self.path_for(key).read_bytes()

    def download(self, key: str, path: Path) -> None:
        shutil.copyfile(self.path_for(key), path)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path_for(prefix), ignore_errors=True)

    def delete(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)

    def local_path(self, key: str) -> Path | None:
        return self.path_for(key)

    def presigned_url(self, key: str, filename: str | None = None) -> str | None:
        return None  # served by the API itself


class S3Storage:
    """An S3-API bucket (AWS S3, Cloudflare R2, MinIO: chosen by `endpoint_url`).

    Clients get presigned GET URLs that expire after `url_ttl_s`; S3 answers their range requests."""

    name = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        url_ttl_s: int = 3600,
        scratch: Path | None = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.url_ttl_s = url_ttl_s
        self.scratch = scratch
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region or ("auto" if endpoint_url else None),  # R2 wants "auto"
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(signature_version="s3v4", retries={"max_attempts": 5, "mode": "standard"}),
        )

    def set_cors(self, origins: list[str]) -> None:
        """Let the studio's pages fetch and stream files straight from the bucket (presigned GETs
        with Range, for HLS and seeking); R2 and S3 take the same rules."""
        rule = {
            "AllowedOrigins": origins,
            "AllowedMethods": ["GET", "HEAD"],
            "AllowedHeaders": ["Range", "If-None-Match", "If-Modified-Since"],
            "ExposeHeaders": ["Content-Range", "Accept-Ranges", "Content-Length", "ETag"],
            "MaxAgeSeconds": 3600,
        }
        self.client.put_bucket_cors(Bucket=self.bucket, CORSConfiguration={"CORSRules": [rule]})

    def staging_dir(self, job_id: str) -> Path:
        if self.scratch is not None:
            self.scratch.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"refrain-{job_id}-", dir=self.scratch))

    def commit(self, folder: Path, job_id: str) -> dict[Path, str]:
        """Upload every file (same keys on a retry: a re-run overwrites, never duplicates), then drop
        the local copies."""
        keys = job_files(folder, job_id)
        for path, key in keys.items():
            self.client.upload_file(
                str(path), self.bucket, key, ExtraArgs={"ContentType": content_type(path.name)}
            )
        shutil.rmtree(folder, ignore_errors=True)
        return keys

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def read_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def download(self, key: str, path: Path) -> None:
        self.client.download_file(self.bucket, key, str(path))

    def delete_prefix(self, prefix: str) -> None:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix.rstrip("/") + "/"):
            objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if objects:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects})

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def local_path(self, key: str) -> Path | None:
        return None

    def presigned_url(self, key: str, filename: str | None = None) -> str | None:
        params = {"Bucket": self.bucket, "Key": key, "ResponseContentType": content_type(key)}
        if filename:
            params["ResponseContentDisposition"] = f'inline; filename="{filename}"'
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=self.url_ttl_s)
