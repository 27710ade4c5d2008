"""Builds the studio's FastAPI app; everything it needs comes from Settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from functions.errors import InvalidRequest, MissingTool
from infra.accounts import IdentityCache, UrlSigner
from infra.billing import BillingConflict, BillingNotOffered, BillingUnavailable, UsageReporter
from infra.db import is_postgres, make_engine, make_sessions
from infra.jobs import LimitExceeded, NotEnoughCredits
from infra.settings import Settings, get_settings
from infra.wiring import make_job_service, make_storage
from local.device import pick_device
from web.account_routes import router as account_router
from web.billing import WEBHOOK_MAX_BYTES, WEBHOOK_PATH, stripe_billing_of, webhook_router
from web.billing import router as billing_router
from web.fastpath import JobReader
from web.limits import BodySizeLimit, RateLimits
from web.routes import files_router, router
from web.schemas import ProblemPublic, first_problem
from web.suno import router as suno_router

STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.jobs.recover()
        if app.state.reader is not None:
            await app.state.reader.open()
        reporter = None
        if settings.billing_enabled:  # unsent usage goes to Stripe from here, whoever finished the job
            reporter = UsageReporter(app.state.sessions, stripe_billing_of(app))
            app.state.jobs.on_usage = reporter.nudge
            reporter.start(settings.meter_flush_s)
        yield
        if reporter is not None:
            reporter.stop()
        if app.state.reader is not None:
            await app.state.reader.close()
        app.state.jobs.shutdown()

    app = FastAPI(
        title="Refrain studio",
        version="0.2.0",
        lifespan=lifespan,
        responses={code: {"model": ProblemPublic} for code in (400, 401, 413, 422, 429)},
        description="Refrain's own API (/api/v1) and a Suno-compatible one (/api). Every song Refrain "
        "makes is AI-generated, watermarked and carries signed content credentials.",
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app.state.settings = settings
    app.state.sessions = make_sessions(make_engine(settings.resolved_database_url))
    app.state.storage = make_storage(settings)
    app.state.jobs = make_job_service(
        settings, app.state.sessions, app.state.storage, pick_device(settings.device)
    )
    app.state.signer = UrlSigner(settings.url_secret(), settings.url_ttl_s)
    app.state.identities = IdentityCache(settings.auth_cache_s)
    app.state.billing = None  # StripeBilling, made on first use where billing is on (tests set their own)
    url = settings.resolved_database_url
    app.state.reader = JobReader(url) if is_postgres(url) else None
    app.state.limits = RateLimits(settings.redis_url, settings.rate_limit, settings.submit_rate_limit)
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_body_bytes, per_path={WEBHOOK_PATH: WEBHOOK_MAX_BYTES}
    )

    @app.exception_handler(InvalidRequest)
    async def _invalid(_: Request, exc: InvalidRequest) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": exc.message, "field": exc.field})

    @app.exception_handler(RequestValidationError)
    async def _malformed(_: Request, exc: RequestValidationError) -> JSONResponse:
        where, message = first_problem(exc, skip=("body",))
        return JSONResponse(status_code=422, content={"detail": f"{where}: {message}", "field": where})

    @app.exception_handler(MissingTool)
    async def _missing(_: Request, exc: MissingTool) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    @app.exception_handler(LimitExceeded)  # rate limits (RateLimited) and the running-job cap
    async def _busy(_: Request, exc: LimitExceeded) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after_s)}
        return JSONResponse(status_code=429, content={"detail": str(exc)}, headers=headers)

    @app.exception_handler(NotEnoughCredits)  # and PlanRequired
    async def _credits(_: Request, exc: NotEnoughCredits) -> JSONResponse:
        return JSONResponse(status_code=402, content={"detail": str(exc)})

    @app.exception_handler(BillingNotOffered)
    async def _not_offered(_: Request, exc: BillingNotOffered) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(BillingUnavailable)
    async def _no_billing(_: Request, exc: BillingUnavailable) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    @app.exception_handler(BillingConflict)
    async def _billing_conflict(_: Request, exc: BillingConflict) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    app.include_router(router)
    app.include_router(account_router)
    app.include_router(suno_router)
    app.include_router(billing_router)
    app.include_router(webhook_router)
    app.include_router(files_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app
