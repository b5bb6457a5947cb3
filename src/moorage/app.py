"""create_app(settings): build the ASGI application with explicit wiring, no globals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.datastructures import Headers

from moorage import __version__
from moorage.api.body_limit import BodyLimitMiddleware
from moorage.api.errors import install_error_handlers
from moorage.api.health import routes as health_routes
from moorage.api.registry.auth import audience
from moorage.api.registry.router import routes as registry_routes
from moorage.api.v1.router import router as api_v1_router
from moorage.auth.crypto import field_cipher
from moorage.auth.permissions import AccessController, OpenAccess, Policy
from moorage.config import Settings
from moorage.db.engine import Database
from moorage.mirror.ssrf import Resolver, SsrfGuard, system_resolver
from moorage.mirror.sync import SyncEnvironment
from moorage.mirror.worker import MirrorWorker
from moorage.observability.http import ObservabilityMiddleware
from moorage.observability.instrument import InstrumentedStorage, instrument_database
from moorage.observability.metrics import Metrics, metrics_endpoint
from moorage.services.access import AccessService, RegistryAccess
from moorage.services.accounts import AccountService
from moorage.services.health import HealthService
from moorage.services.management import ManagementServices
from moorage.services.mirror_health import MirrorHealthService
from moorage.services.mirrors import MirrorService, mirror_robot_lookup
from moorage.services.notification_delivery import NotificationDeliverer
from moorage.services.notifications import NotificationService
from moorage.services.registry import RegistryServices
from moorage.services.repo_cache import RepoCache
from moorage.storage.base import StorageDriver
from moorage.storage.factory import build_driver
from moorage.web import install_web_ui

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Wiring:
    """Everything a request may need, built once per process in the lifespan."""

    db: Database
    storage: StorageDriver
    services: RegistryServices
    management: ManagementServices
    accounts: AccountService
    access_service: AccessService
    access: AccessController
    mirrors: MirrorService
    mirror_health: MirrorHealthService
    notifications: NotificationService


def build(
    settings: Settings, db: Database, storage: StorageDriver, resolver: Resolver | None = None
) -> Wiring:
    accounts = AccountService(db, settings.SUPER_USERS)
    repo_cache = RepoCache()
    policy = Policy(
        anonymous_access=settings.FEATURE_ANONYMOUS_ACCESS,
        registry_readonly=settings.REGISTRY_STATE == "readonly",
    )
    access_service = AccessService(
        db, accounts, policy, settings.secret("SECRET_KEY"), mirror_robot=mirror_robot_lookup
    )
    access: AccessController
    if settings.INSECURE_OPEN_REGISTRY_NO_AUTH:
        log.warning("INSECURE_OPEN_REGISTRY_NO_AUTH is on: anyone may pull and push anything")
        access = OpenAccess()
    else:

        def _audience(headers: Headers) -> str:
            return audience(headers, settings)

        access = RegistryAccess(access_service, _audience)
    ssrf = SsrfGuard(settings.SSRF_ALLOWED_HOSTS, resolver or system_resolver)
    return Wiring(
        db=db,
        storage=storage,
        services=RegistryServices.build(settings, db, storage, repo_cache),
        management=ManagementServices.build(db, accounts, repo_cache),
        accounts=accounts,
        access_service=access_service,
        access=access,
        mirror_health=MirrorHealthService(db, settings.REPO_MIRROR_WORKER_REPLICAS),
        mirrors=MirrorService(
            db,
            field_cipher(settings),
            ssrf,
            settings.FEATURE_SPARSE_INDEX,
        ),
        notifications=NotificationService(db, settings, ssrf),
    )


def build_worker(settings: Settings, wiring: Wiring, metrics: Metrics) -> MirrorWorker:
    env = SyncEnvironment(
        settings=settings,
        db=wiring.db,
        registry=wiring.services,
        cipher=field_cipher(settings),
        ssrf=wiring.mirrors.ssrf,
    )
    return MirrorWorker(env, metrics.mirror, heartbeat=wiring.mirror_health.beat)


def build_deliverer(
    settings: Settings, wiring: Wiring, owner: str, metrics: Metrics | None = None
) -> NotificationDeliverer:
    """The notification delivery loop; it runs wherever a mirror worker runs."""
    deliverer = NotificationDeliverer(
        settings,
        wiring.db,
        wiring.notifications.ssrf,
        owner,
        metrics.notifications if metrics is not None else None,
    )
    wiring.notifications.on_queued = deliverer.wake
    return deliverer


async def purge_uploads_forever(settings: Settings, wiring: Wiring, stop: asyncio.Event) -> None:
    """Purge abandoned upload sessions periodically (UPLOAD_PURGE_AFTER_SECONDS)."""
    period = min(max(settings.UPLOAD_PURGE_AFTER_SECONDS // 4, 60), 3600)
    while not stop.is_set():
        try:
            purged = await wiring.services.uploads.purge_stale(settings.UPLOAD_PURGE_AFTER_SECONDS)
            if purged:
                log.info("purged %d abandoned uploads", purged)
        except Exception:
            log.exception("purging abandoned uploads failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=period)


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    storage: StorageDriver | None = None,
    resolver: Resolver | None = None,
    run_worker: bool = False,
    maintenance: bool = False,
) -> FastAPI:
    """The Moorage ASGI app. Resources are created in the lifespan unless injected.

    With ``run_worker`` (what `moorage serve` does unless --no-worker), the mirror worker runs
    in the same event loop.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = database or Database(settings.database_url, pool_size=settings.DB_POOL_SIZE)
        driver = storage or build_driver(settings)
        wiring = build(settings, db, InstrumentedStorage(driver, metrics.io), resolver)
        uninstrument_db = instrument_database(db, metrics.io)
        for name in Wiring.__slots__:
            setattr(app.state, name, getattr(wiring, name))
        app.state.metrics = metrics
        app.state.health = HealthService(db, wiring.storage)
        stop = asyncio.Event()
        worker_task = deliver_task = None
        if run_worker and settings.FEATURE_REPO_MIRROR:
            worker = build_worker(settings, wiring, metrics)
            wiring.mirrors.on_sync_now = worker.wake
            worker_task = asyncio.create_task(worker.run(stop))
            deliverer = build_deliverer(settings, wiring, worker.owner, metrics)
            deliver_task = asyncio.create_task(deliverer.run(stop))
        purge_task = None
        if maintenance:
            purge_task = asyncio.create_task(purge_uploads_forever(settings, wiring, stop))
        try:
            yield
        finally:
            stop.set()
            for task in (worker_task, deliver_task, purge_task):
                if task is not None:
                    await task
            uninstrument_db()
            if storage is None:
                await driver.close()
            if database is None:
                await db.dispose()

    app = FastAPI(
        title="Moorage",
        version=__version__,
        lifespan=lifespan,
        docs_url="/api/v1/docs",
        openapi_url="/api/v1/openapi.json",
        redoc_url=None,
    )
    app.state.settings = settings
    metrics = Metrics()
    app.router.routes.extend(registry_routes())
    app.add_route("/metrics", metrics_endpoint(metrics), methods=["GET"], include_in_schema=False)
    app.router.routes.extend(health_routes())
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.API_MAX_BODY_SIZE)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics.http)
    app.include_router(api_v1_router(settings))
    install_web_ui(app)
    install_error_handlers(app)
    return app
