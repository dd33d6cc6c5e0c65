"""``create_app(services)``: the FastAPI application over one set of services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from reachflow import __version__
from reachflow.api.errors import install_error_handlers
from reachflow.api.middleware import install_middleware
from reachflow.api.openapi import install_openapi
from reachflow.api.public_envelope import install_public_surface
from reachflow.api.routes import (
    agent_calls,
    agents,
    compliance,
    dialnexa,
    dialnexa_leads,
    executions,
    ops,
    public,
    retell,
    twilio,
    webhooks,
    workflows,
)
from reachflow.bootstrap import Services
from reachflow.web import install_console


def create_app(services: Services, *, run_worker: bool = False) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_worker:
            services.worker.start()
        try:
            yield
        finally:
            if run_worker:
                services.worker.stop()

    # /docs and /redoc load Swagger UI and ReDoc from the package, not from a CDN.
    app = FastAPIOffline(
        title="reachflow",
        version=__version__,
        lifespan=lifespan,
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.services = services
    install_error_handlers(app)
    install_middleware(app, services.settings)  # request ids, 500/503, rate and body limits
    install_public_surface(app, services.settings)  # /v1/public: the envelope, CORS
    for module in (
        agents,
        workflows,
        executions,
        compliance,
        dialnexa,
        dialnexa_leads,
        agent_calls,
        twilio,
        retell,
        webhooks,
        public,
        ops,
    ):
        app.include_router(module.router)
    install_console(app)  # the operator console at / (reachflow/web, docs/console.md)
    install_openapi(app)
    return app
