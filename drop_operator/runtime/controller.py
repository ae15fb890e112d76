"""The reconcile loop: informer events -> workqueue of keys -> N workers calling ``reconcile(key)``.

A reconcile returns ``None``/``Result()`` (done: backoff forgotten), ``Result(requeue_after=s)``
(check again in ``s`` > 0 seconds), ``Result.retry(reason)`` (a failure it handled: counted as an
error, logged as a warning with the reason, the key retried with the rate limiter), or raises: the
exception is logged with its traceback and key, counted, and the key retried with the rate limiter.
Nothing a reconciler does can kill the worker or the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from drop_operator.runtime import metrics
from drop_operator.runtime.clock import Clock
from drop_operator.runtime.informer import Informer
from drop_operator.runtime.predicates import Predicate
from drop_operator.runtime.resources import object_key
from drop_operator.runtime.workqueue import Debounce, WorkQueue

log = structlog.get_logger(__name__)

Obj = dict[str, Any]


@dataclass(frozen=True)
class Result:
    """Outcome of a reconcile that did not raise.

    ``requeue_after`` (seconds, > 0) schedules another pass and forgets the backoff; zero or a
    negative value is a ``ValueError`` rather than a silent rate-limited requeue. ``retry_reason``
    (made by :meth:`retry`) asks for a rate-limited retry, as an exception would, without one.
    """

    requeue_after: float | None = None
    retry_reason: str | None = None

    def __post_init__(self) -> None:
        if self.requeue_after is not None and not self.requeue_after > 0:
            raise ValueError(
                f"requeue_after must be > 0 seconds, got {self.requeue_after!r}; "
                "use Result.retry(reason) for a rate-limited retry"
            )
        if self.requeue_after is not None and self.retry_reason is not None:
            raise ValueError("a result either requeues after a delay or retries with backoff, not both")

    @classmethod
    def retry(cls, reason: str) -> Result:
        """A failure the reconciler handled (e.g. some child writes failed): retry with backoff."""
        return cls(retry_reason=reason)


Reconcile = Callable[[str], Awaitable[Result | None]]
EventType = Literal["add", "update", "delete"]
ALL_EVENTS: tuple[EventType, ...] = ("add", "update", "delete")


def controller_owner_key(obj: Obj, owner_kind: str, *, owner_namespaced: bool = False) -> str | None:
    """Key of the ``controller: true`` ownerReference of ``owner_kind``, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == owner_kind and ref.get("name"):
            namespace = (obj.get("metadata") or {}).get("namespace")
            return f"{namespace}/{ref['name']}" if owner_namespaced and namespace else str(ref["name"])
    return None


class Trigger:
    """Keys raised from inside the process, for the controllers that watch it (controller-runtime's
    ``source.Channel``): a reconciler that learns during its pass that other objects need a look
    fires their keys, and the wiring decides who listens (:meth:`Controller.watch_trigger`)."""

    def __init__(self) -> None:
        self._sinks: list[Callable[[str], None]] = []

    def connect(self, sink: Callable[[str], None]) -> None:
        self._sinks.append(sink)

    def fire(self, keys: Iterable[str]) -> None:
        for key in keys:
            for sink in self._sinks:
                sink(key)


class Controller:
    """Created through ``Manager.controller``; runs only while this instance leads."""

    def __init__(
        self,
        name: str,
        reconcile: Reconcile,
        *,
        workers: int = 2,
        clock: Clock | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a controller needs at least one worker")
        self.name = name
        self.reconcile = reconcile
        self.workers = workers
        self.queue = WorkQueue(name, clock=clock)
        self._tasks: list[asyncio.Task[None]] = []
        self._active = metrics.ACTIVE_WORKERS.labels(controller=name)
        self._time = metrics.RECONCILE_TIME.labels(controller=name)
        self._errors = metrics.RECONCILE_ERRORS.labels(controller=name)
        self._results = {
            r: metrics.RECONCILE_TOTAL.labels(controller=name, result=r)
            for r in ("success", "error", "requeue_after")
        }
        metrics.MAX_CONCURRENT.labels(controller=name).set(workers)
        self._active.set(0)

    # -- wiring ----------------------------------------------------------------------------------

    def enqueue(self, key: str) -> None:
        self.queue.add(key)

    def watch_for(self, informer: Informer, *, predicates: Sequence[Predicate] = ()) -> None:
        """Reconcile an object of the informer's kind under its own key."""
        self.watch_mapped(informer, lambda obj: (object_key(obj),), predicates=predicates)

    def watch_owned(
        self,
        informer: Informer,
        owner_kind: str,
        *,
        owner_namespaced: bool = False,
        predicates: Sequence[Predicate] = (),
        events: Collection[EventType] = ALL_EVENTS,
    ) -> None:
        """Reconcile the controlling owner (of ``owner_kind``) when an owned object changes.

        Owners are taken as cluster-scoped (key = name) unless ``owner_namespaced`` (key =
        the dependent's namespace/name), since an ownerReference does not say which.
        """

        def owner(obj: Obj) -> Iterable[str]:
            key = controller_owner_key(obj, owner_kind, owner_namespaced=owner_namespaced)
            return (key,) if key else ()

        self.watch_mapped(informer, owner, predicates=predicates, events=events)

    def watch_mapped(
        self,
        informer: Informer,
        map_fn: Callable[[Obj], Iterable[str]],
        *,
        predicates: Sequence[Predicate] = (),
        events: Collection[EventType] = ALL_EVENTS,
        debounce: Debounce | None = None,
    ) -> None:
        """Reconcile the keys ``map_fn`` returns for each changed object (old and new state).

        ``events`` limits which informer events count (controller-runtime's per-event predicate
        funcs): for example only updates and deletes, when an add never means anything happened.
        ``debounce`` coalesces the keys' events (:meth:`WorkQueue.add_debounced`): a burst of
        them costs one reconcile once it pauses, and one per ``max_delay`` while it does not;
        without it every event queues its keys at once.
        """

        def passes(old: Obj | None, new: Obj) -> bool:
            return all(p(old, new) for p in predicates)

        def enqueue(keys: Iterable[str]) -> None:
            if debounce is None:
                self._enqueue_all(keys)
            else:
                for key in keys:
                    self.queue.add_debounced(key, debounce)

        def on_add(obj: Obj) -> None:
            if passes(None, obj):
                enqueue(map_fn(obj))

        def on_update(old: Obj, new: Obj) -> None:
            if passes(old, new):
                keys = dict.fromkeys(map_fn(new))
                keys.update(dict.fromkeys(map_fn(old)))
                enqueue(keys)

        def on_delete(obj: Obj) -> None:
            if passes(None, obj):
                enqueue(map_fn(obj))

        informer.add_handler(
            on_add=on_add if "add" in events else None,
            on_update=on_update if "update" in events else None,
            on_delete=on_delete if "delete" in events else None,
        )

    def watch_trigger(self, trigger: Trigger) -> None:
        """Reconcile the keys fired on ``trigger``."""
        trigger.connect(self.queue.add)

    def _enqueue_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.queue.add(key)

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._worker(), name=f"{self.name}-worker-{i}") for i in range(self.workers)
        ]
        self._tasks.append(loop.create_task(self._progress_metrics(), name=f"{self.name}-metrics"))
        log.info("controller started", controller=self.name, workers=self.workers)

    async def shutdown(self, grace_period: float) -> bool:
        """Stop taking keys; let reconciles in flight finish for up to ``grace_period`` seconds.

        Returns ``False`` if work had to be cancelled.
        """
        self.queue.shutdown()
        drained = await self.queue.drain(within=grace_period)
        if not drained:
            log.warning(
                "grace period over, cancelling reconciles",
                controller=self.name,
                keys=sorted(self.queue.processing),
            )
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        return drained

    async def _progress_metrics(self) -> None:
        while True:
            self.queue.update_progress_metrics()
            await asyncio.sleep(1.0)

    async def _worker(self) -> None:
        while (key := await self.queue.get()) is not None:
            try:
                await self._process(key)
            finally:
                self.queue.done(key)

    async def _process(self, key: str) -> None:
        reconcile_id = uuid.uuid4().hex[:12]
        started = time.monotonic()
        self._active.inc()
        with structlog.contextvars.bound_contextvars(
            controller=self.name, key=key, reconcile_id=reconcile_id
        ):
            try:
                result = await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._errors.inc()
                self._results["error"].inc()
                log.exception("reconcile failed", retries=self.queue.num_requeues(key))
                self.queue.add_rate_limited(key)
            else:
                if result is not None and result.retry_reason is not None:
                    self._errors.inc()
                    self._results["error"].inc()
                    log.warning(
                        "reconcile will retry",
                        reason=result.retry_reason,
                        retries=self.queue.num_requeues(key),
                    )
                    self.queue.add_rate_limited(key)
                elif result is not None and result.requeue_after is not None:
                    self._results["requeue_after"].inc()
                    self.queue.forget(key)
                    self.queue.add_after(key, result.requeue_after)
                else:
                    self._results["success"].inc()
                    self.queue.forget(key)
            finally:
                self._active.dec()
                self._time.observe(time.monotonic() - started)
