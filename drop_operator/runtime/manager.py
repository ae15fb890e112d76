"""The manager: owns the shared informers, controllers, leader election and probe server.

Start-up order: probe/metrics server -> informers -> wait for caches (bounded) -> ready -> leader
election -> controllers. A standby replica keeps its caches warm and reports ready, so a hand-over
costs one Lease acquisition, not a full re-list.

Shutdown (``stop()``, SIGTERM in the CLI): workqueues stop handing out keys, reconciles in flight get
``grace_period`` seconds to finish, the Lease is released so a standby takes over at once, informers
stop, queued Events are flushed, and ``run()`` returns.

Losing the Lease unintentionally is not a shutdown but a stop, as in controller-runtime (whose
manager exits when leader election is lost): another replica may lead already, so nothing more may
be written. Every write of the manager's client is fenced (:meth:`KubeClient.fenced`) on
:meth:`LeaderElector.holds_lease`, so the first write after the renew deadline is refused before it
is sent (a frozen process that resumes writes nothing), the reconciles in flight are cancelled at
once with no grace period, queued Events are dropped, and ``run()`` raises
:class:`LeadershipLostError` (the CLI exits 1 and the pod restarts as a standby).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from drop_operator.runtime.client import KubeClient
from drop_operator.runtime.controller import Controller, Reconcile
from drop_operator.runtime.events import EventRecorder
from drop_operator.runtime.health import HealthServer, LoopHeartbeat
from drop_operator.runtime.informer import Informer
from drop_operator.runtime.leaderelection import LeaderElector, LeadershipLostError
from drop_operator.runtime.resources import Resource
from drop_operator.runtime.transform import Fields

log = structlog.get_logger(__name__)


class CacheSyncTimeoutError(Exception):
    """Informers did not complete their first LIST within ``sync_timeout``."""


class Manager:
    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str,
        leader_election: bool = True,
        lease_name: str = "drop-operator",
        metrics_addr: str = "127.0.0.1:8080",
        probe_addr: str = "127.0.0.1:8081",
        sync_timeout: float = 60,
        grace_period: float = 30,
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        resync_period: float | None = 10 * 3600,
        informer_options: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        """The client reconcilers and Event recorders write through: fenced on the Lease when
        leader election is on."""
        self.namespace = namespace
        self.sync_timeout = sync_timeout
        self.grace_period = grace_period
        self.resync_period = resync_period
        self.informer_options = informer_options or {}
        self.elector: LeaderElector | None = None
        if leader_election:
            self.elector = LeaderElector(
                client,
                namespace=namespace,
                name=lease_name,
                identity=identity,
                lease_duration=lease_duration,
                renew_deadline=renew_deadline,
                retry_period=retry_period,
            )
            self.client = client.fenced(self._fence)
        self.health = HealthServer(probe_addr=probe_addr, metrics_addr=metrics_addr)
        self.heartbeat = LoopHeartbeat()
        self.health.liveness.append(self.heartbeat.check)
        self.health.liveness.append(self._informers_alive)
        self.health.readiness.append(self._caches_synced)
        self._informers: dict[tuple[Resource, str | None, str | None, str | None], Informer] = {}
        self._controllers: dict[str, Controller] = {}
        self._recorders: dict[str, EventRecorder] = {}
        self._stop: asyncio.Event | None = None
        self._stop_requested = False
        self._lost = False
        self.started_controllers = False

    # -- building --------------------------------------------------------------------------------

    def informer(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        fields: Fields | None = None,
    ) -> Informer:
        """The shared informer for this resource and scope (created on first request).

        ``fields`` are the paths the caller reads (``None``: whole objects); the informer keeps
        what any of its callers reads (:meth:`Informer.require`), so ask before the manager runs.
        """
        key = (res, namespace, label_selector, field_selector)
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(
                self.client,
                res,
                namespace=namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                resync_period=self.resync_period,
                fields=fields,
                **self.informer_options,
            )
            self._informers[key] = informer
        else:
            informer.require(fields)
        return informer

    def controller(self, name: str, reconcile: Reconcile, *, workers: int = 2) -> Controller:
        if name in self._controllers:
            raise ValueError(f"controller {name!r} already registered")
        controller = Controller(name, reconcile, workers=workers)
        self._controllers[name] = controller
        return controller

    def event_recorder(self, component: str) -> EventRecorder:
        recorder = self._recorders.get(component)
        if recorder is None:
            recorder = EventRecorder(self.client, component=component, namespace=self.namespace)
            self._recorders[component] = recorder
        return recorder

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    # -- checks ----------------------------------------------------------------------------------

    def _caches_synced(self) -> str | None:
        pending = [inf.label for inf in self._informers.values() if not inf.has_synced]
        return f"caches not synced: {', '.join(pending)}" if pending else None

    def _informers_alive(self) -> str | None:
        stuck = [inf.label for inf in self._informers.values() if not inf.healthy()]
        return f"watch stuck or informer dead: {', '.join(stuck)}" if stuck else None

    def _fence(self) -> None:
        """Refuse a write unless this replica surely leads; the first refusal stops the manager."""
        if self.elector is None or self.elector.holds_lease():
            return
        if self.started_controllers and not self._lost:
            self._lost = True
            log.error("leadership lost, refusing writes and stopping", lease=self.elector.name)
            if self._stop is not None:
                self._stop.set()
        raise LeadershipLostError(
            f"not the leader of lease {self.namespace}/{self.elector.name}: write refused"
        )

    @property
    def is_leader(self) -> bool:
        return self.elector is None or self.elector.is_leader

    # -- running ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask ``run()`` to shut down gracefully; safe to call more than once or before ``run()``."""
        self._stop_requested = True
        if self._stop is not None:
            self._stop.set()

    async def run(self) -> None:
        """Run until :meth:`stop`. Raises on cache sync timeout or lost leadership (exit non-zero)."""
        self._stop = asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        self.heartbeat.start()
        self.health.start()
        log.info("probe and metrics endpoints listening", ports=self.health.ports)
        hold: asyncio.Task[None] | None = None
        try:
            for informer in self._informers.values():
                informer.start()
            await self._wait_synced()
            if self.elector is not None:
                if not await self._until_stopped(self.elector.acquire()):
                    return
                hold = asyncio.get_running_loop().create_task(self.elector.hold(), name="lease-renew")
            for controller in self._controllers.values():
                controller.start()
            self.started_controllers = True
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._stop.wait())]
            if hold is not None:
                waits.append(hold)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            waits[0].cancel()
            if hold is not None and hold.done() and hold.exception() is not None:
                self._lost = True
            if self._lost:
                raise LeadershipLostError(
                    f"lost lease {self.namespace}/{self.elector.name if self.elector else ''}"
                )
        finally:
            await self._shutdown(hold)

    async def _wait_synced(self) -> None:
        waits = [inf.wait_synced() for inf in self._informers.values()]
        if not waits:
            return
        synced = await self._until_stopped(asyncio.gather(*waits), within=self.sync_timeout)
        if synced is None:
            raise CacheSyncTimeoutError(
                f"caches not synced within {self.sync_timeout:g}s: {self._caches_synced()}"
            )
        log.info("caches synced", informers=len(waits))

    async def _until_stopped(self, aw: Any, within: float | None = None) -> bool | None:
        """Await ``aw`` unless stop comes first. ``True`` = done, ``False`` = stopped, ``None`` = ``within`` passed."""
        assert self._stop is not None
        task = asyncio.ensure_future(aw)
        stopper = asyncio.ensure_future(self._stop.wait())
        done, _ = await asyncio.wait({task, stopper}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if task in done:
            task.result()
            return True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        return False if stopper in done else None

    async def _shutdown(self, hold: asyncio.Task[None] | None) -> None:
        """Graceful (drain, release, flush) unless the Lease was lost (cancel now, write nothing)."""
        lost = self._lost
        grace = 0.0 if lost else self.grace_period
        log.info("shutting down", grace_period=grace, leadership_lost=lost)
        if self.started_controllers:
            await asyncio.gather(*(c.shutdown(grace) for c in self._controllers.values()))
        if hold is not None and not hold.done():
            hold.cancel()
            with contextlib.suppress(asyncio.CancelledError, LeadershipLostError):
                await hold
        if self.elector is not None:
            await self.elector.release()
        for recorder in self._recorders.values():
            await recorder.close(flush=not lost)
        for informer in self._informers.values():
            await informer.stop()
        await self.heartbeat.stop()
        self.health.stop()
        log.info("stopped")
