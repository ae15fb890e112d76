"""``/healthz``, ``/readyz`` and ``/metrics`` served from a thread of their own.

The probe server runs its own event loop in a daemon thread, so a blocked main loop cannot also
block the answer about it: ``/healthz`` reports the main loop as stalled when its heartbeat is older
than ``stall_after`` seconds, instead of just timing out. Checks are plain callables reading simple
attributes (safe across threads under the GIL).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = structlog.get_logger(__name__)

Check = Callable[[], str | None]  # None = fine, otherwise the reason it is not


def parse_address(addr: str) -> tuple[str, int] | None:
    """``host:port`` (``:port`` means all interfaces); ``0`` or empty disables the endpoint."""
    if addr in ("", "0"):
        return None
    host, _, port = addr.rpartition(":")
    return (host or "0.0.0.0", int(port))


class LoopHeartbeat:
    """Ticks in the main loop; the probe thread compares the last tick with the wall clock."""

    def __init__(self, interval: float = 1.0, stall_after: float = 10.0) -> None:
        self.interval = interval
        self.stall_after = stall_after
        self.last = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._tick(), name="loop-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _tick(self) -> None:
        while True:
            self.last = time.monotonic()
            await asyncio.sleep(self.interval)

    def check(self) -> str | None:
        silent = time.monotonic() - self.last
        if silent > self.stall_after:
            return f"event loop stalled for {silent:.1f}s"
        return None


class HealthServer:
    def __init__(self, *, probe_addr: str, metrics_addr: str) -> None:
        self.probe_addr = parse_address(probe_addr)
        self.metrics_addr = parse_address(metrics_addr)
        self.liveness: list[Check] = []
        self.readiness: list[Check] = []
        self.ports: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runners: list[web.AppRunner] = []
        self._started = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        """Bind the listeners (raises if a port is taken) and serve from a daemon thread."""
        self._thread = threading.Thread(target=self._serve, name="probe-server", daemon=True)
        self._thread.start()
        self._started.wait(10)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        loop = self._loop
        if loop is not None and self._thread is not None:
            fut = asyncio.run_coroutine_threadsafe(self._cleanup(), loop)
            with contextlib.suppress(Exception):
                fut.result(5)
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(5)
        self._loop = None

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._bind())
        except BaseException as exc:
            self._error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _bind(self) -> None:
        sites: dict[tuple[str, int], list[str]] = {}
        if self.probe_addr:
            sites.setdefault(self.probe_addr, []).append("probe")
        if self.metrics_addr:
            sites.setdefault(self.metrics_addr, []).append("metrics")
        for (host, port), roles in sites.items():
            app = web.Application()
            if "probe" in roles:
                app.router.add_get("/healthz", self._healthz)
                app.router.add_get("/readyz", self._readyz)
            if "metrics" in roles:
                app.router.add_get("/metrics", self._metrics)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, host, port)
            await site.start()
            self._runners.append(runner)
            bound = runner.addresses[0][1] if runner.addresses else port
            for role in roles:
                self.ports[role] = int(bound)

    async def _cleanup(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners = []

    @staticmethod
    def _run_checks(checks: list[Check]) -> list[str]:
        failures = []
        for check in checks:
            try:
                reason = check()
            except Exception as exc:
                reason = f"check failed: {exc!r}"
            if reason:
                failures.append(reason)
        return failures

    async def _healthz(self, _request: web.Request) -> web.Response:
        failures = self._run_checks(self.liveness)
        if failures:
            return web.Response(status=500, text="\n".join(failures) + "\n")
        return web.Response(text="ok")

    async def _readyz(self, _request: web.Request) -> web.Response:
        failures = self._run_checks(self.readiness)
        if failures:
            return web.Response(status=503, text="\n".join(failures) + "\n")
        return web.Response(text="ok")

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
