"""The FastAPI application: create_app(settings) wires routes, errors, static files and the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from app import (
    api,
    api_battery,
    api_manifests,
    api_reports,
    errors,
    login,
    web,
    web_audit,
    web_batches,
    web_dashboard,
    web_import,
    web_map,
    web_places,
    web_trace,
)
from app.auth import PrincipalDep
from app.settings import Settings
from models.db import make_engine

STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for the given settings; the engine lives as long as the app's lifespan."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = make_engine(settings.database_url)
        try:
            yield
        finally:
            app.state.engine.dispose()

    app = FastAPI(
        title="circuflow",
        version="0.1.0",
        summary="Solid-waste and power-battery flows of an industrial province, and their utilisation rates.",
        lifespan=lifespan,
        # The documentation is served below, behind sign-in like everything but the login page and the health check.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    errors.register(app)
    app.include_router(api.router, prefix="/api/v1")
    app.include_router(api_reports.router, prefix="/api/v1")
    app.include_router(api_manifests.router, prefix="/api/v1")
    app.include_router(api_battery.router, prefix="/api/v1")
    app.include_router(web.router)
    app.include_router(login.router)
    app.include_router(web_import.router)
    app.include_router(web_dashboard.router)
    app.include_router(web_map.router)
    app.include_router(web_batches.router)
    app.include_router(web_places.router)
    app.include_router(web_trace.router)
    app.include_router(web_audit.router)
    app.include_router(web_import.api_router, prefix="/api/v1")

    @app.get("/api/v1/openapi.json", include_in_schema=False)
    def openapi(_principal: PrincipalDep) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs(_principal: PrincipalDep) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/api/v1/openapi.json",
            title="circuflow API",
            swagger_js_url="/static/vendor/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        """Whether the service can reach its database."""
        try:
            with app.state.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any failure means unhealthy; say which
            return JSONResponse({"status": "error", "database": str(exc).splitlines()[0]}, status_code=503)
        return JSONResponse({"status": "ok", "database": app.state.engine.dialect.name})

    return app
