"""`refrain-preflight`: checks the settings a hosted deployment needs before `modal deploy`, and names
every one that is missing or wrong (the environment variable to set, and why).

    refrain-preflight                # settings only
    refrain-preflight --connect      # and reach PostgreSQL and the bucket
    refrain-preflight --apply-cors   # and let the studio's page stream from the bucket (R2 / S3 CORS)

Exit 0 when all is well, 2 with one line per problem otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from infra.settings import Settings, get_settings
from infra.storage import S3Storage


def problems(settings: Settings) -> list[str]:
    """What a production deployment (paid tier on Modal, files on R2) lacks, one line each."""
    found: list[str] = []

    def need(ok: object, variable: str, why: str) -> None:
        if not ok:
            found.append(f"{variable}: {why}")

    need(settings.environment == "production", "REFRAIN_ENVIRONMENT", "set it to production")
    need(str(settings.database_url or "").startswith("postgresql"), "REFRAIN_DATABASE_URL",
         "a postgresql:// URL (the library, the queue and the ledger live there)")  # fmt: skip
    need(settings.storage == "s3", "REFRAIN_STORAGE", "s3 (R2): containers share no disk")
    need(settings.s3_bucket, "REFRAIN_S3_BUCKET", "the bucket the songs go to")
    need(settings.s3_endpoint_url or settings.s3_region, "REFRAIN_S3_ENDPOINT_URL",
         "R2: https://<account id>.r2.cloudflarestorage.com")  # fmt: skip
    need(settings.s3_access_key_id and settings.s3_secret_access_key, "REFRAIN_S3_ACCESS_KEY_ID",
         "and REFRAIN_S3_SECRET_ACCESS_KEY: an R2 API token with read and write on the bucket")  # fmt: skip
    need(settings.secret_key and len(settings.secret_key) >= 32, "REFRAIN_SECRET_KEY",
         "32 or more random characters (it signs file URLs)")  # fmt: skip
    signing = (settings.c2pa_key_pem and settings.c2pa_chain_pem) or (
        settings.c2pa_key_file and settings.c2pa_chain_file
    )
    need(
        signing,
        "REFRAIN_C2PA_KEY_PEM",
        "and REFRAIN_C2PA_CHAIN_PEM: the content-credentials signing key and chain",
    )
    need(settings.auth == "accounts", "REFRAIN_AUTH", "accounts (API keys and sign-in)")
    need(settings.paid_runner == "modal", "REFRAIN_PAID_RUNNER", "modal (paid songs on the GPU class)")
    need(settings.runner == "worker", "REFRAIN_RUNNER",
         "worker (free songs from the queue; the free-tier Mac runs refrain-worker --tier free)")  # fmt: skip
    need(settings.public_url and settings.public_url.startswith("https://"), "REFRAIN_PUBLIC_URL",
         "the studio's https address (Stripe returns people there)")  # fmt: skip
    if settings.stripe_secret_key:
        need(settings.stripe_webhook_secret, "REFRAIN_STRIPE_WEBHOOK_SECRET",
             "whsec_… of the webhook pointing at /api/v1/billing/webhook")  # fmt: skip
    else:
        found.append(
            "REFRAIN_STRIPE_SECRET_KEY: without it the paid plan is not sold (set it, or accept this)"
        )
    return found


def reachable(settings: Settings) -> list[str]:
    """Problems reaching the database and the bucket."""
    found: list[str] = []
    try:
        from sqlalchemy import create_engine, text

        engine = create_engine(settings.resolved_database_url)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        found.append(
            f"REFRAIN_DATABASE_URL: cannot connect ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        )
    if settings.storage == "s3" and settings.s3_bucket:
        try:
            _s3(settings).client.head_bucket(Bucket=settings.s3_bucket)
        except Exception as exc:
            found.append(
                f"REFRAIN_S3_BUCKET: cannot reach {settings.s3_bucket} ({type(exc).__name__}: {exc})"
            )
    return found


def _s3(settings: Settings) -> S3Storage:
    from infra.wiring import make_storage

    storage = make_storage(settings)
    assert isinstance(storage, S3Storage)
    return storage


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="refrain-preflight", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connect", action="store_true", help="also reach PostgreSQL and the bucket")
    parser.add_argument("--apply-cors", action="store_true", help="allow the studio's origin on the bucket")
    args = parser.parse_args(argv)
    settings = get_settings()
    found = problems(settings)
    if args.connect or args.apply_cors:
        found += reachable(settings)
    if args.apply_cors and not found and settings.public_url:
        _s3(settings).set_cors([settings.public_url])
        print(f"bucket {settings.s3_bucket}: CORS allows {settings.public_url}")
    for line in found:
        print(f"refrain-preflight: {line}", file=sys.stderr)
    if not found:
        print("refrain-preflight: ready to deploy")
    return 2 if found else 0


if __name__ == "__main__":
    sys.exit(main())
