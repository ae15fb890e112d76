"""Pull pods as the API server reports them, with the peaks of pulls in flight at once.

A watch of its own (not the operator's cache), so a test samples the truth at the server: the
highest number of active pull pods ever seen per pool, image and node, and when each was created.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from typing import Any

from drop_operator.controllers.cachedimage.pullpods import ANNOTATION_IMAGE, LABEL_POOL, is_active, pod_node
from drop_operator.runtime import KubeClient
from drop_operator.runtime.resources import PODS

Obj = dict[str, Any]


class PodWatch:
    """Every pull pod of a namespace as the API server reports it, with the peaks of concurrency."""

    def __init__(self, client: KubeClient, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.pods: dict[str, Obj] = {}
        self.added: list[tuple[float, Obj]] = []
        self.peak_pool: Counter[str] = Counter()
        self.peak_image: Counter[str] = Counter()
        self.peak_node: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        items, rv = await self.client.list(PODS, namespace=self.namespace)
        for pod in items:
            self._apply("ADDED", pod)
        self._ready.set()
        while True:
            async for event in self.client.watch(
                PODS, namespace=self.namespace, resource_version=rv, timeout_seconds=300
            ):
                obj = event["object"]
                rv = obj["metadata"].get("resourceVersion", rv)
                if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    self._apply(event["type"], obj)

    def _apply(self, type_: str, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        if type_ == "DELETED":
            self.pods.pop(name, None)
        else:
            if type_ == "ADDED" and name not in self.pods:
                self.added.append((time.monotonic(), pod))
            self.pods[name] = pod
        self._measure()

    def _measure(self) -> None:
        pools: Counter[str] = Counter()
        images: Counter[str] = Counter()
        nodes: Counter[str] = Counter()
        for pod in self.pods.values():
            if not is_active(pod):
                continue
            meta = pod["metadata"]
            pools[meta["labels"].get(LABEL_POOL, "")] += 1
            images[meta["annotations"][ANNOTATION_IMAGE]] += 1
            nodes[pod_node(pod)] += 1
        for peak, now in ((self.peak_pool, pools), (self.peak_image, images), (self.peak_node, nodes)):
            for key, value in now.items():
                peak[key] = max(peak[key], value)

    def active(self) -> list[Obj]:
        return [p for p in self.pods.values() if is_active(p)]

    def creations(self) -> dict[tuple[str, str], list[float]]:
        """Times each (image, node) pull pod was created, as seen by the watch."""
        out: dict[tuple[str, str], list[float]] = defaultdict(list)
        for at, pod in self.added:
            out[(pod["metadata"]["annotations"][ANNOTATION_IMAGE], pod_node(pod))].append(at)
        return dict(out)
