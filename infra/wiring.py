"""Builds the parts that settings choose between: storage backend, dispatcher, job service."""

from __future__ import annotations

from sqlalchemy.orm import sessionmaker

from infra.jobs import Dispatcher, JobService
from infra.settings import Settings
from infra.storage import LocalStorage, S3Storage, Storage


def make_storage(settings: Settings) -> Storage:
    if settings.storage == "s3":
        if not settings.s3_bucket:
            raise ValueError("REFRAIN_S3_BUCKET must be set when REFRAIN_STORAGE=s3")
        return S3Storage(
            settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
            url_ttl_s=settings.url_ttl_s,
            scratch=settings.data_dir / "scratch",
        )
    return LocalStorage(settings.data_dir)


def make_job_service(settings: Settings, sessions: sessionmaker, storage: Storage, device: str) -> JobService:
    """The service with the runners REFRAIN_RUNNER (free tier, everyone by default) and
    REFRAIN_PAID_RUNNER (the paid tier) name. Only inline needs signing material and models here:
    the other runners finish songs elsewhere."""
    runners = {settings.runner, settings.paid_runner or settings.runner}
    signing = settings.signing_material() if "inline" in runners else None
    service = JobService(settings, sessions, storage, device, signing)
    service.dispatcher = make_dispatcher(settings.runner, settings, service, "free")
    if settings.paid_runner and (settings.paid_runner, settings.runner) != ("inline", "inline"):
        service.paid_dispatcher = make_dispatcher(settings.paid_runner, settings, service, "paid")
    return service


def make_dispatcher(runner: str, settings: Settings, service: JobService, tier: str) -> Dispatcher:
    """Queue workers serve tiers: a free-tier worker (the owner's Mac) never takes a paid job."""
    from infra.queue import QUEUES, InlineDispatcher, ModalDispatcher, QueueDispatcher

    if runner == "worker":
        return QueueDispatcher(settings.resolved_database_url, QUEUES[tier])
    if runner == "modal":
        return ModalDispatcher(settings.modal_app)
    return InlineDispatcher(service, settings.worker_threads)
