"""Kubernetes Events (``events.k8s.io/v1``) deduplicated into series.

The same (object, type, reason, action, note) within ``series_window`` (10 min) does not create a new
Event: the existing one's ``series.count`` is bumped with a patch, as client-go's recorder does. This
keeps a reconciler that reports the same condition on every pass from flooding etcd.

Where Events live: Events about namespaced objects go into the operator namespace (so the operator
needs no Event rights in other namespaces). Events about cluster-scoped objects must, per the API
server's validation of ``events.k8s.io/v1`` Events, be in ``default`` (or ``kube-system``); they go to
``default``. ``kubectl describe`` finds both through ``regarding``.

Recording never raises and never blocks: events are queued and written by one background task; a
failure is logged and dropped, because an Event is never worth failing a reconcile for.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import structlog

from drop_operator.runtime import metrics
from drop_operator.runtime.client import KubeClient
from drop_operator.runtime.errors import ApiError
from drop_operator.runtime.resources import EVENTS
from drop_operator.runtime.timeutil import micro_time

log = structlog.get_logger(__name__)

NOTE_LIMIT = 1024
FIELD_LIMIT = 128


@dataclass
class _Series:
    name: str
    namespace: str
    count: int
    last_seen: float


def _truncate(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "..."


class EventRecorder:
    """Get one per component from ``Manager.event_recorder(component)``."""

    def __init__(
        self,
        client: KubeClient,
        *,
        component: str,
        namespace: str,
        instance: str | None = None,
        cluster_scoped_namespace: str = "default",
        series_window: float = 600.0,
        max_series: int = 4096,
        max_pending: int = 1000,
    ) -> None:
        self.client = client
        self.component = component
        self.namespace = namespace
        self.cluster_scoped_namespace = cluster_scoped_namespace
        self.instance = _truncate(instance or f"{component}-{socket.gethostname()}", FIELD_LIMIT)
        self.series_window = series_window
        self.max_series = max_series
        self._series: OrderedDict[str, _Series] = OrderedDict()
        self._pending: asyncio.Queue[tuple[dict[str, Any], str, str, str, str]] = asyncio.Queue(max_pending)
        self._task: asyncio.Task[None] | None = None

    def event(self, obj: dict[str, Any], type_: str, reason: str, note: str, action: str) -> None:
        """Record an event about ``obj``; returns at once, never raises."""
        try:
            self._pending.put_nowait((obj, type_, reason, note, action))
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(
                    self._drain(), name=f"events-{self.component}"
                )
        except asyncio.QueueFull:
            log.warning("event queue full, dropping event", reason=reason)
        except Exception:
            log.exception("could not queue event", reason=reason)

    async def flush(self, within: float = 5.0) -> None:
        """Wait (bounded) until queued events are written; used at shutdown and in tests."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._pending.join()

    async def close(self, *, flush: bool = True) -> None:
        """Stop the writer; ``flush`` first writes what is queued (not after a lost Lease)."""
        if flush:
            await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _drain(self) -> None:
        while True:
            item = await self._pending.get()
            try:
                await self._write(*item)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not record event", reason=item[2])
            finally:
                self._pending.task_done()

    async def _write(self, obj: dict[str, Any], type_: str, reason: str, note: str, action: str) -> None:
        meta = obj.get("metadata") or {}
        regarding = {
            "apiVersion": obj.get("apiVersion", ""),
            "kind": obj.get("kind", ""),
            "name": meta.get("name", ""),
            "uid": meta.get("uid", ""),
        }
        if meta.get("namespace"):
            regarding["namespace"] = meta["namespace"]
        if meta.get("resourceVersion"):
            regarding["resourceVersion"] = meta["resourceVersion"]
        note = _truncate(note, NOTE_LIMIT)
        reason = _truncate(reason, FIELD_LIMIT)
        action = _truncate(action, FIELD_LIMIT)
        parts = (regarding["kind"], regarding.get("namespace", ""), regarding["name"], regarding["uid"])
        ident = "\x00".join((*parts, type_, reason, action, note))
        key = hashlib.sha256(ident.encode()).hexdigest()
        now = time.monotonic()
        series = self._series.get(key)
        if series is not None and now - series.last_seen < self.series_window:
            try:
                await self.client.patch(
                    EVENTS,
                    series.name,
                    {"series": {"count": series.count + 1, "lastObservedTime": micro_time()}},
                    namespace=series.namespace,
                )
            except ApiError as exc:
                if not exc.not_found:
                    raise
            else:
                series.count += 1
                series.last_seen = now
                self._series.move_to_end(key)
                metrics.EVENTS_EMITTED.labels(kind="series").inc()
                return
        namespace = self.namespace if meta.get("namespace") else self.cluster_scoped_namespace
        name = f"{regarding['name'][:200]}.{time.time_ns():x}"
        body = {
            "apiVersion": EVENTS.api_version,
            "kind": EVENTS.kind,
            "metadata": {"name": name, "namespace": namespace},
            "eventTime": micro_time(),
            "reportingController": self.component,
            "reportingInstance": self.instance,
            "action": action,
            "reason": reason,
            "note": note,
            "type": type_,
            "regarding": regarding,
        }
        await self.client.create(EVENTS, body)
        metrics.EVENTS_EMITTED.labels(kind="new").inc()
        self._series[key] = _Series(name, namespace, 1, now)
        self._series.move_to_end(key)
        while len(self._series) > self.max_series:
            self._series.popitem(last=False)
