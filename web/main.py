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
from infra.db import make_engine, make_sessions
from infra.settings import Settings, get_settings
from infra.storage import LocalStorage
from local.runner import LocalRunner
from web.routes import files_router, router

STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runner.resume_unfinished()
        yield
        app.state.runner.shutdown()

    app = FastAPI(title="Refrain studio", version="0.1.0", lifespan=lifespan)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app.state.settings = settings
    app.state.sessions = make_sessions(make_engine(settings.resolved_database_url))
    app.state.storage = LocalStorage(settings.data_dir)
    app.state.runner = LocalRunner(settings, app.state.sessions, app.state.storage)

    @app.exception_handler(InvalidRequest)
    async def _invalid(_: Request, exc: InvalidRequest) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": exc.message, "field": exc.field})

    @app.exception_handler(RequestValidationError)
    async def _malformed(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return JSONResponse(
            status_code=422, content={"detail": f"{where}: {first.get('msg', 'invalid')}", "field": where}
        )

    @app.exception_handler(MissingTool)
    async def _missing(_: Request, exc: MissingTool) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    app.include_router(router)
    app.include_router(files_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app
