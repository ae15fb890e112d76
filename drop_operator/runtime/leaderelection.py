"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's algorithm and defaults.

A candidate takes the Lease when it is free or its holder has not renewed it for ``lease_duration``
as *observed on the local monotonic clock* (so clock skew between nodes does not matter). The leader
renews every ``retry_period``; if renewals keep failing for ``renew_deadline`` it gives up leadership
before anyone else may take it over (renew_deadline < lease_duration). A graceful shutdown releases
the Lease (clears ``holderIdentity``) so a standby takes over on its next retry instead of waiting for
expiry. All writes are compare-and-swap on the Lease's resourceVersion.

:meth:`LeaderElector.holds_lease` is what a leader may act on: True only within ``renew_deadline``
of its last successful renewal, measured on the monotonic clock. A process that was frozen (a
stopped container, a long GC pause, a suspended VM) and resumes past that deadline knows at once
that another replica may lead now, before the renew loop gets to run again.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
import uuid
from typing import Any

import structlog

from drop_operator.runtime import metrics
from drop_operator.runtime.client import KubeClient
from drop_operator.runtime.errors import ApiError
from drop_operator.runtime.resources import LEASES
from drop_operator.runtime.timeutil import micro_time

log = structlog.get_logger(__name__)


class LeadershipLostError(Exception):
    """The Lease could not be renewed within the renew deadline."""


def default_identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class LeaderElector:
    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str,
        name: str,
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._leader = False
        self._renewed_at = 0.0
        self._gauge = metrics.LEADER.labels(name=name)
        self._gauge.set(0)

    @property
    def is_leader(self) -> bool:
        return self._leader

    def holds_lease(self) -> bool:
        """Leader, and renewed within ``renew_deadline`` (monotonic seconds): safe to write.

        Others may take the Lease ``lease_duration`` after they saw our last renewal, which is later
        than the renewal itself, so ``renew_deadline < lease_duration`` leaves a margin.
        """
        return self._leader and time.monotonic() - self._renewed_at < self.renew_deadline

    def _set_leader(self, value: bool) -> None:
        if value != self._leader:
            log.info(
                "leadership " + ("acquired" if value else "lost"), lease=self.name, identity=self.identity
            )
        self._leader = value
        self._gauge.set(1 if value else 0)

    async def acquire(self) -> None:
        """Return once this instance holds the Lease (retrying every ``retry_period`` with jitter)."""
        log.info("waiting for leadership", lease=f"{self.namespace}/{self.name}", identity=self.identity)
        while True:
            started = time.monotonic()
            if await self._try():
                break
            await asyncio.sleep(self.retry_period * (1 + random.random() * 0.2))
        self._renewed_at = started
        self._set_leader(True)

    async def hold(self) -> None:
        """Keep renewing; raises :class:`LeadershipLostError` when the renew deadline passes without success."""
        while True:
            await asyncio.sleep(self.retry_period)
            remaining = self.renew_deadline - (time.monotonic() - self._renewed_at)
            ok = False
            attempt = time.monotonic()
            if remaining > 0:
                try:
                    async with asyncio.timeout(remaining):
                        ok = await self._try()
                except TimeoutError:
                    ok = False
            if ok:
                # Counted from when the attempt started: the Lease says renewTime = then.
                self._renewed_at = attempt
            elif not self.holds_lease():
                self._set_leader(False)
                raise LeadershipLostError(f"could not renew lease {self.namespace}/{self.name}")

    async def release(self) -> None:
        """Give the Lease up if we hold it, so a standby can take over at once. Never raises."""
        if not self._leader:
            return
        self._set_leader(False)
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
            spec = lease.setdefault("spec", {})
            if spec.get("holderIdentity") != self.identity:
                return
            spec.pop("holderIdentity", None)
            spec["leaseDurationSeconds"] = 1
            spec["renewTime"] = micro_time()
            await self.client.replace(LEASES, lease)
            log.info("lease released", lease=self.name, identity=self.identity)
        except ApiError as exc:
            log.warning("could not release lease", lease=self.name, error=str(exc))

    async def _try(self) -> bool:
        """One acquire-or-renew attempt; ``True`` if we hold the Lease afterwards."""
        now = micro_time()
        try:
            try:
                lease = await self.client.get(LEASES, self.name, self.namespace)
            except ApiError as exc:
                if not exc.not_found:
                    raise
                body = {
                    "apiVersion": LEASES.api_version,
                    "kind": LEASES.kind,
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec({}, now),
                }
                created = await self.client.create(LEASES, body)
                self._observe(created)
                return True
            spec = lease.get("spec") or {}
            self._observe(lease)
            holder = spec.get("holderIdentity") or ""
            duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
            if holder and holder != self.identity and time.monotonic() < self._observed_at + duration:
                return False
            lease["spec"] = self._spec(spec, now)
            updated = await self.client.replace(LEASES, lease)
            self._observe(updated)
            return True
        except ApiError as exc:
            if not (exc.conflict or exc.already_exists):
                log.warning("lease update failed", lease=self.name, status=exc.status, error=exc.message)
            return False

    def _spec(self, old: dict[str, Any], now: str) -> dict[str, Any]:
        spec = dict(old)
        if old.get("holderIdentity") != self.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(old.get("leaseTransitions") or 0) + (1 if old else 0)
        spec["holderIdentity"] = self.identity
        spec["leaseDurationSeconds"] = int(self.lease_duration)
        spec["renewTime"] = now
        return spec

    def _observe(self, lease: dict[str, Any]) -> None:
        spec = lease.get("spec") or {}
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("acquireTime"))
        if record != self._observed:
            self._observed = record
            self._observed_at = time.monotonic()
