"""A shared informer: LIST + WATCH into a local cache, with indexes and event handlers.

Follows client-go's reflector:

* paginated LIST, then WATCH from the list's resourceVersion with bookmarks, so quiet watches still
  advance the resume point and reconnects do not re-list;
* a randomised server-side watch timeout (5-10 min) so replicas don't reconnect in lockstep, and a
  client-side inactivity timeout (~80 s, above the server's one-minute bookmark period) so a silently
  dead connection is noticed: a frozen watch is the classic "handlers stop firing" failure;
* reconnect backoff 0.8 s -> 30 s with jitter; on 410 Gone an immediate re-list that turns the
  difference between cache and server into add / update / delete notifications (objects deleted
  while we were away are reported as deleted with their last known state).

Handlers run synchronously in the informer task and must be cheap (they normally just enqueue keys).

Every object is passed through the informer's transforms before it is cached or handed to a
handler: managed fields dropped, an optional :class:`~.transform.Fields` projection and transform
function, strings interned (see :mod:`.transform`).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from drop_operator.runtime import metrics
from drop_operator.runtime.backoff import Backoff
from drop_operator.runtime.client import KubeClient
from drop_operator.runtime.errors import ApiError
from drop_operator.runtime.resources import Resource, object_key
from drop_operator.runtime.transform import Fields, TransformFunc, intern_strings

log = structlog.get_logger(__name__)

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], Iterable[str]]


@dataclass
class _Handler:
    on_add: Callable[[Obj], None] | None
    on_update: Callable[[Obj, Obj], None] | None
    on_delete: Callable[[Obj], None] | None


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class Informer:
    """One cache per (resource, namespace, selectors); get instances from ``Manager.informer``."""

    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resync_period: float | None = None,
        server_timeout: tuple[int, int] = (300, 600),
        inactivity_timeout: float = 80.0,
        backoff: Backoff | None = None,
        page_size: int = 500,
        strip_managed_fields: bool = True,
        fields: Fields | None = None,
        transform: TransformFunc | None = None,
        intern: bool = True,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.server_timeout = server_timeout
        self.inactivity_timeout = inactivity_timeout
        self.backoff = backoff or Backoff()
        self.page_size = page_size
        self.strip_managed_fields = strip_managed_fields
        self.fields = fields
        """The paths cached objects keep (``None``: whole objects); widened by :meth:`require`."""
        self.transform = transform
        """Applied after the projection (controller-runtime's ``TransformFunc``)."""
        self.intern = intern
        self._store: dict[str, Obj] = {}
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indexes: dict[str, dict[str, set[str]]] = {}
        self._index_values: dict[str, dict[str, str | tuple[str, ...]]] = {}
        """Index name -> object key -> the values it is filed under: one value as itself, several as
        a tuple, none not at all (a tuple per object and index costs ~100 bytes of thousands)."""
        self._handlers: list[_Handler] = []
        self._synced = asyncio.Event()
        self._resource_version = ""
        self._task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self.state = "stopped"  # listing | watching | backoff | stopped
        self.last_activity = time.monotonic()
        self.label = str(resource) + (f"@{namespace}" if namespace else "")
        self._m_last = metrics.INFORMER_LAST_EVENT.labels(resource=self.label)
        self._m_objects = metrics.INFORMER_OBJECTS.labels(resource=self.label)

    # -- reading the cache -----------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        return self._store.get(key)

    def list(self) -> builtins.list[Obj]:
        return list(self._store.values())

    def keys(self) -> builtins.list[str]:
        return list(self._store)

    def by_index(self, name: str, value: str) -> builtins.list[Obj]:
        keys = self._indexes[name].get(value, ())
        return [self._store[k] for k in sorted(keys)]

    def index_count(self, name: str, value: str) -> int:
        """How many cached objects index ``name`` files under ``value``: O(1), no list is built."""
        return len(self._indexes[name].get(value, ()))

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, within: float | None = None) -> bool:
        try:
            async with asyncio.timeout(within):
                await self._synced.wait()
        except TimeoutError:
            return False
        return True

    @property
    def resource_version(self) -> str:
        """The resourceVersion the next watch resumes from."""
        return self._resource_version

    # -- registration ----------------------------------------------------------------------------

    def require(self, fields: Fields | None) -> None:
        """Keep ``fields`` too in cached objects (``None``: keep whole objects).

        A shared informer keeps what any of its users reads. Objects already cached cannot get
        pruned fields back, so widening an informer that has started raises ``ValueError``.
        """
        wider = None if fields is None or self.fields is None else self.fields | fields
        if wider == self.fields:
            return
        if self._task is not None or self.has_synced:
            raise ValueError(f"informer {self.label} has started: it cannot keep more fields now")
        self.fields = wider

    def add_index(self, name: str, fn: IndexFunc) -> None:
        if name in self._index_funcs:
            raise ValueError(f"index {name!r} already exists on {self.label}")
        self._index_funcs[name] = fn
        self._indexes[name] = {}
        self._index_values[name] = {}
        for key, obj in self._store.items():
            self._index_add(name, key, obj)

    def ensure_index(self, name: str, fn: IndexFunc) -> None:
        """Add index ``name`` unless this very function already backs it (idempotent).

        Informers are shared between controllers, so several setups may ask for the same index;
        a *different* function under a taken name is a conflict and raises ``ValueError``.
        """
        existing = self._index_funcs.get(name)
        if existing is fn:
            return
        self.add_index(name, fn)

    def add_handler(
        self,
        on_add: Callable[[Obj], None] | None = None,
        on_update: Callable[[Obj, Obj], None] | None = None,
        on_delete: Callable[[Obj], None] | None = None,
    ) -> None:
        """Register callbacks; objects already cached are replayed to ``on_add`` right away."""
        handler = _Handler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if on_add is not None:
            for obj in list(self._store.values()):
                self._call(on_add, obj)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name=f"informer-{self.label}")
            if self.resync_period:
                self._resync_task = asyncio.get_running_loop().create_task(
                    self._resync_loop(self.resync_period), name=f"resync-{self.label}"
                )
        return self._task

    async def stop(self) -> None:
        for task in (self._task, self._resync_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._resync_task = None
        self.state = "stopped"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def healthy(self, now: float | None = None) -> bool:
        """False if the loop died, or a watch is open but silent well beyond its inactivity budget.

        The watch's own inactivity timeout should have fired long before; if it did not, the task is
        stuck somewhere and only a restart helps. Backoff and listing are progress, hence healthy.
        """
        if self._task is not None and self._task.done():
            return False
        now = time.monotonic() if now is None else now
        return not (self.state == "watching" and now - self.last_activity > self.inactivity_timeout * 1.5)

    def _touch(self) -> None:
        self.last_activity = time.monotonic()
        self._m_last.set(time.time())

    async def run(self) -> None:
        """List and watch until cancelled; a restarted informer resumes from its last resourceVersion."""
        need_list = not (self.has_synced and self._resource_version)
        while True:
            reason = "timeout"
            try:
                if need_list:
                    await self._list()
                    need_list = False
                await self._watch()
            except ApiError as exc:
                if exc.gone:
                    log.info("watch expired, re-listing", resource=self.label, message=exc.message)
                    need_list = True
                    metrics.INFORMER_RECONNECTS.labels(resource=self.label, reason="gone").inc()
                    continue
                reason = "inactivity" if exc.reason == "Timeout" else "error"
                log.warning(
                    "list/watch failed",
                    resource=self.label,
                    status=exc.status,
                    reason=exc.reason,
                    error=exc.message,
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                reason = "error"
                log.exception("informer loop failed", resource=self.label)
            else:
                metrics.INFORMER_RECONNECTS.labels(resource=self.label, reason=reason).inc()
                continue
            metrics.INFORMER_RECONNECTS.labels(resource=self.label, reason=reason).inc()
            self.state = "backoff"
            delay = self.backoff.next()
            log.info("reconnecting after backoff", resource=self.label, delay=round(delay, 2))
            await asyncio.sleep(delay)

    async def _list(self) -> None:
        self.state = "listing"
        self._touch()
        items, rv = await self.client.list(
            self.resource,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            page_size=self.page_size,
        )
        metrics.INFORMER_RELISTS.labels(resource=self.label).inc()
        self._replace(items)
        self._resource_version = rv
        self._synced.set()
        self._touch()
        log.debug("listed", resource=self.label, count=len(items), resource_version=rv)

    async def _watch(self) -> None:
        self.state = "watching"
        self._touch()
        timeout = random.randint(*self.server_timeout)
        events = self.client.watch(
            self.resource,
            resource_version=self._resource_version,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=timeout,
            allow_bookmarks=True,
            inactivity_timeout=self.inactivity_timeout,
        )
        async with contextlib.aclosing(events) as stream:
            async for event in stream:
                self._touch()
                self.backoff.reset()
                self._apply(event)
        self.backoff.reset()

    # -- store maintenance -----------------------------------------------------------------------

    def _prepare(self, obj: Obj) -> Obj:
        """What the cache keeps of ``obj`` (see :mod:`.transform`)."""
        if self.strip_managed_fields:
            # Server-side apply bookkeeping: large, and never read from a cache (controller-runtime
            # strips it the same way). Reconcilers that need it GET the object.
            (obj.get("metadata") or {}).pop("managedFields", None)
        if self.fields is not None:
            obj = self.fields(obj)
        if self.transform is not None:
            obj = self.transform(obj)
        return intern_strings(obj) if self.intern else obj

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj: Obj = event.get("object") or {}
        metrics.INFORMER_EVENTS.labels(resource=self.label, type=str(kind)).inc()
        rv = _rv(obj)
        if kind == "BOOKMARK":
            if rv:
                self._resource_version = rv
            return
        obj = self._prepare(obj)
        key = object_key(obj)
        if kind in ("ADDED", "MODIFIED"):
            self._upsert(key, obj)
        elif kind == "DELETED":
            self._remove(key, obj)
        if rv:
            self._resource_version = rv

    def _upsert(self, key: str, obj: Obj) -> None:
        old = self._store.get(key)
        if old is not None and _rv(old) == _rv(obj):
            return  # already seen (overlap after a re-list): never notify twice
        self._store[key] = obj
        self._reindex(key, obj)
        self._m_objects.set(len(self._store))
        for h in self._handlers:
            if old is None:
                if h.on_add is not None:
                    self._call(h.on_add, obj)
            elif h.on_update is not None:
                self._call(h.on_update, old, obj)

    def _remove(self, key: str, last: Obj | None = None) -> None:
        old = self._store.pop(key, None)
        if old is None:
            return
        self._unindex(key)
        self._m_objects.set(len(self._store))
        gone = last or old
        for h in self._handlers:
            if h.on_delete is not None:
                self._call(h.on_delete, gone)

    def _replace(self, items: builtins.list[Obj]) -> None:
        fresh = {object_key(obj): obj for obj in map(self._prepare, items)}
        for key in [k for k in self._store if k not in fresh]:
            self._remove(key)
        for key, obj in fresh.items():
            self._upsert(key, obj)

    def _reindex(self, key: str, obj: Obj) -> None:
        for name in self._index_funcs:
            self._index_remove(name, key)
            self._index_add(name, key, obj)

    def _unindex(self, key: str) -> None:
        for name in self._index_funcs:
            self._index_remove(name, key)

    def _index_add(self, name: str, key: str, obj: Obj) -> None:
        try:
            values = tuple(dict.fromkeys(self._index_funcs[name](obj)))
        except Exception:
            log.exception("index function failed", resource=self.label, index=name, key=key)
            values = ()
        if values:
            self._index_values[name][key] = values[0] if len(values) == 1 else values
        index = self._indexes[name]
        for value in values:
            index.setdefault(value, set()).add(key)

    def _index_remove(self, name: str, key: str) -> None:
        index = self._indexes[name]
        stored = self._index_values[name].pop(key, ())
        for value in (stored,) if isinstance(stored, str) else stored:
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]

    def _call(self, fn: Callable[..., None], *args: Obj) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("informer handler failed", resource=self.label, key=object_key(args[-1]))

    async def _resync_loop(self, period: float) -> None:
        """Replay the cache as updates (no API calls), so level-triggered work gets re-checked."""
        while True:
            await asyncio.sleep(period)
            if not self.has_synced:
                continue
            for obj in list(self._store.values()):
                for h in self._handlers:
                    if h.on_update is not None:
                        self._call(h.on_update, obj, obj)
