"""The FastAPI application: create_app(settings) wires routes, errors, static files and the engine."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import event, text

from app import (
    api,
    api_asks,
    api_battery,
    api_flags,
    api_licences,
    api_lockcheck,
    api_manifests,
    api_notifications,
    api_refdata,
    api_registry,
    api_reports,
    api_revisions,
    errors,
    files,
    login,
    web,
    web_asks,
    web_audit,
    web_batches,
    web_battery_work,
    web_dashboard,
    web_flags,
    web_import,
    web_inbox,
    web_inspection,
    web_map,
    web_places,
    web_print,
    web_refdata,
    web_registry,
    web_search,
    web_trace,
)
from app.admission import Admission
from app.auth import PrincipalDep
from app.limits import RequestLimits
from app.mailer import Mailer
from app.numbers import NumberStyle
from app.replica import ReadAfterWrite, Replica, read_engine_for
from app.security import SecurityHeaders
from app.settings import Settings, engine_for
from app.setup import ensure_partitions_at_start
from flows.access import trail as audit
from flows.kernel.bounds import MB
from models.db import make_engine, writer

STATIC_DIR = Path(__file__).resolve().parent / "static"
HEALTH_TIMEOUT_S = 1.0
log = logging.getLogger("circuflow")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for the given settings; the engine lives as long as the app's lifespan."""
    settings = settings or Settings()

    connections = settings.db_pool_size + settings.db_max_overflow

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.engine = engine_for(settings)
        app.state.write_engine = writer(app.state.engine)
        ensure_partitions_at_start(app.state.write_engine)
        app.state.replica = None
        if settings.read_database_url:
            app.state.replica = Replica(
                read_engine_for(settings),
                secret=settings.secret_key,
                max_lag_s=settings.replica_max_lag_s,
                check_s=settings.replica_check_s,
            )
        # The health check has a connection and a thread of its own, so that it answers while every pooled
        # connection and worker thread is busy.
        app.state.health_engine = make_engine(
            settings.database_url, busy_timeout_s=1.0, pool_size=1, max_overflow=0, pool_timeout_s=1.0
        )
        app.state.health_limiter = anyio.CapacityLimiter(2)
        # Every statement that the database answered proves it reachable: a busy worker answers its health check
        # from that at once, and probes only when it has not heard from the database for a second.
        app.state.database_answered = 0.0

        def answered(*_args: object) -> None:
            app.state.database_answered = time.monotonic()

        event.listen(app.state.engine, "after_cursor_execute", answered)
        # A thread for every request let in (see Admission), so that none of them waits for a thread.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(limiter.total_tokens, connections)
        app.state.mailer = None
        target = settings.smtp_target()
        if target is not None or settings.flag_scan_s:
            app.state.mailer = Mailer(
                engine=app.state.write_engine,
                target=target,
                poll_s=settings.smtp_poll_s,
                base_url=settings.mail_base_url,
                flag_scan_s=settings.flag_scan_s,
            )
            app.state.mailer.start()
        try:
            yield
        finally:
            if app.state.mailer is not None:
                app.state.mailer.stop()
            app.state.engine.dispose()
            app.state.health_engine.dispose()
            if app.state.replica is not None:
                app.state.replica.dispose()

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
    app.state.replica = None  # the lifespan opens it when CIRCUFLOW_READ_DATABASE_URL is set
    audit.use_signing_key(settings.audit_signing_key())  # entries written in this process sign the head
    # No more requests inside the app than there are connections in the pool (innermost: it guards the handlers).
    app.add_middleware(Admission, limit=connections, timeout_s=settings.db_pool_timeout_s)
    # Added first, so it runs inside SecurityHeaders: its own 413 and 422 answers carry the same headers.
    app.add_middleware(
        RequestLimits,
        json_bytes=int(settings.max_json_mb * MB),
        upload_bytes=int(settings.max_upload_mb * MB),
    )
    if settings.read_database_url:
        # Outside Admission: a write refused as busy is still a write attempt, whose next page reads the primary.
        app.add_middleware(ReadAfterWrite, secret=settings.secret_key, window_s=settings.read_after_write_s)
    app.add_middleware(SecurityHeaders, tile_url=settings.tile_url)
    app.add_middleware(NumberStyle, wan_threshold=settings.wan_t_threshold)
    errors.register(app)
    app.include_router(api.router, prefix="/api/v1")
    app.include_router(api_reports.router, prefix="/api/v1")
    app.include_router(api_flags.router, prefix="/api/v1")
    app.include_router(api_manifests.router, prefix="/api/v1")
    app.include_router(api_battery.router, prefix="/api/v1")
    app.include_router(api_licences.router, prefix="/api/v1")
    app.include_router(api_registry.router, prefix="/api/v1")
    app.include_router(api_asks.router, prefix="/api/v1")
    app.include_router(api_revisions.router, prefix="/api/v1")
    app.include_router(api_lockcheck.router, prefix="/api/v1")
    app.include_router(api_refdata.router, prefix="/api/v1")
    app.include_router(web.router)
    app.include_router(login.router)
    app.include_router(web_import.router)
    app.include_router(web_dashboard.router)
    app.include_router(web_map.router)
    app.include_router(web_batches.router)
    app.include_router(web_places.router)
    app.include_router(web_registry.router)
    app.include_router(web_refdata.router)
    app.include_router(web_battery_work.router)  # before web_trace: /batteries/new is not a code
    app.include_router(web_trace.router)
    app.include_router(web_audit.router)
    app.include_router(web_flags.router)
    app.include_router(web_asks.router)
    app.include_router(web_import.api_router, prefix="/api/v1")
    app.include_router(web_print.router)
    app.include_router(web_print.api_router, prefix="/api/v1")
    app.include_router(web_inspection.router)
    app.include_router(web_inspection.api_router, prefix="/api/v1")
    app.include_router(api_notifications.router, prefix="/api/v1")
    app.include_router(web_inbox.router)
    app.include_router(web_search.router)
    app.include_router(web_search.api_router, prefix="/api/v1")
    app.include_router(files.router)
    app.include_router(files.api_router, prefix="/api/v1")

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
    async def healthz() -> JSONResponse:
        """Whether the service can reach its database (within a second)."""

        healthy: dict[str, object] = {"status": "ok", "database": app.state.engine.dialect.name}
        if app.state.replica is not None:
            # Out of use is no failure (the primary reads); a look at it that takes too long reports the last one.
            with anyio.move_on_after(HEALTH_TIMEOUT_S):
                await anyio.to_thread.run_sync(
                    app.state.replica.usable, limiter=app.state.health_limiter, abandon_on_cancel=True
                )
            healthy["replica"] = app.state.replica.health()
        if time.monotonic() - app.state.database_answered < HEALTH_TIMEOUT_S:
            return JSONResponse(healthy)

        def probe() -> None:
            with app.state.health_engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        try:
            with anyio.fail_after(HEALTH_TIMEOUT_S):
                await anyio.to_thread.run_sync(probe, limiter=app.state.health_limiter, abandon_on_cancel=True)
        except TimeoutError:
            # Reachable or not, a worker that cannot answer within a second is not one to send users to.
            log.warning("health check: no answer within %s s", HEALTH_TIMEOUT_S)
            return JSONResponse({"status": "error", "database": "no answer within 1 s"}, status_code=503)
        except Exception:  # noqa: BLE001 - any failure means unhealthy; the cause stays in the server's log
            log.warning("health check failed", exc_info=True)
            return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
        return JSONResponse(healthy)

    return app


def app_from_environment() -> FastAPI:
    """The app for the settings of the environment: the factory that `circuflow serve --workers N` hands uvicorn."""
    return create_app(Settings())
