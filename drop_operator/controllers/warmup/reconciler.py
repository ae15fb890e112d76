"""Node -> its warming taints removed once the gating images are cached there (or after maxWait).

The shell of a pass over one Node; the decision is :func:`~.decide.decide`:

1. **Parse**: the node's name, uid, creation time and taints; the gates (CachedImages with
   ``warmUp`` whose taint key the node carries), each parsed once into a :class:`~.decide.Gate`.
2. **Recall**: the removals this process made that the cache may not show yet (Expectations).
3. **Decide** which warming taints go, and when to look again.
4. **Apply**: one merge patch of ``spec.taints`` carrying the node's ``resourceVersion``, so a taint
   added or removed concurrently (by a user, the node lifecycle controller) is never overwritten: a
   conflict retries on the fresh node. Then an Event on the node and the duration metric.
5. No status of its own: the gating CachedImages count their warming nodes (``status.warmingNodes``).
6. **Requeue** when the first ``maxWait`` ends; the images' records (which nodes hold them) and
   node changes wake it through the watches before that.

A record is decoded once per version (its ``resourceVersion``) and reference, not once per node: a
burst of joining nodes reads each gating image's set from memory.

The operator never adds a warming taint. A node without one (never tainted, or untainted by hand) is
never written to.
"""

from __future__ import annotations

from typing import Any

from drop_operator.api import DEFAULT_WARMING_TAINT, CachedImage
from drop_operator.controllers.common import first_and_more, meta, nodecache
from drop_operator.controllers.warmup import metrics
from drop_operator.controllers.warmup.decide import Gate, Release, cached_keys, decide
from drop_operator.runtime import ApiError, EventRecorder, Informer, KubeClient, Result
from drop_operator.runtime.clock import Clock, RealClock
from drop_operator.runtime.logging import get_logger
from drop_operator.runtime.memory import Expectations, KeyedMemory
from drop_operator.runtime.resources import NODES

__all__ = ["IMAGES_BY_WARMING_TAINT", "NODES_BY_TAINT_KEY", "WarmUpReconciler", "warming_taint_of"]

log = get_logger(__name__)

Obj = dict[str, Any]

IMAGES_BY_WARMING_TAINT = "warmup.taint-key"
"""CachedImages by ``spec.warmUp.taintKey``."""
NODES_BY_TAINT_KEY = "warmup.node-taint-key"
"""Nodes by the keys of their taints."""
REMOVAL_TTL = 30.0
"""Seconds a removal this process made is trusted while the cache still shows the taint."""


def warming_taint_of(image: Obj) -> str | None:
    """``spec.warmUp.taintKey`` of an unparsed CachedImage (its default when ``warmUp`` is ``{}``)."""
    warm_up = (image.get("spec") or {}).get("warmUp")
    if not isinstance(warm_up, dict):
        return None
    return str(warm_up.get("taintKey") or DEFAULT_WARMING_TAINT)


class WarmUpReconciler:
    """Reconciles one Node per call."""

    def __init__(
        self,
        client: KubeClient,
        *,
        nodes: Informer,
        images: Informer,
        records: Informer,
        namespace: str,
        recorder: EventRecorder | None,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.nodes = nodes
        self.images = images
        self.records = records
        """The images' records (ConfigMaps in ``namespace``): which nodes hold each image."""
        self.namespace = namespace
        self.decoded: KeyedMemory[frozenset[str]] = KeyedMemory()
        self.recorder = recorder
        self.clock = clock or RealClock()
        self.removed: Expectations[None] = Expectations(REMOVAL_TTL, self.clock.now)
        metrics.NODES_WARMING.set_function(self.nodes_warming)

    def nodes_warming(self) -> float:
        """Nodes carrying a taint that some CachedImage names as its warming taint (scrape time)."""
        return float(sum(1 for node in self.nodes.list() if self._gates_of(node)))

    def _gates_of(self, node: Obj) -> list[Obj]:
        keys = {str(t.get("key")) for t in (node.get("spec") or {}).get("taints") or ()}
        return [image for key in sorted(keys) for image in self.images.by_index(IMAGES_BY_WARMING_TAINT, key)]

    async def reconcile(self, key: str) -> Result | None:
        node = self.nodes.get(key)
        if node is None:
            return None
        node_meta = meta(node)  # parse once
        if node_meta.deleting or node_meta.creation_timestamp is None:
            return None
        gates = [g for g in (self._gate(CachedImage.from_obj(i)) for i in self._gates_of(node)) if g]
        if not gates:
            return None
        uid = node_meta.uid or ""
        taints = list((node.get("spec") or {}).get("taints") or ())
        # Removals the cache does not show yet (recall): do not decide or write them twice.
        self.removed.pending(lambda item: not any(f"{uid}/{t.get('key')}" == item for t in taints))
        gates = [g for g in gates if f"{uid}/{g.taint_key}" not in self.removed]
        verdict = decide(node, gates, created=node_meta.creation_timestamp.timestamp(), now=self.clock.wall())
        if verdict.release:
            gone = {r.key for r in verdict.release}
            try:
                await self.client.patch(
                    NODES,
                    node_meta.name,
                    {
                        "metadata": {"resourceVersion": node_meta.resource_version},
                        "spec": {"taints": [t for t in taints if t.get("key") not in gone]},
                    },
                )
            except ApiError as err:
                if err.not_found:
                    return None
                if err.status == 409:
                    return Result.retry("node changed while removing its warming taint")
                if err.status == 403:
                    log.warning("not allowed to patch nodes; warming taints stay", node=node_meta.name)
                    return Result.retry("forbidden to patch nodes")
                raise
            for release in verdict.release:
                self.removed.expect(f"{uid}/{release.key}", None)
                self._released(node, release)
        if verdict.recheck_after is not None:
            return Result(requeue_after=max(0.05, verdict.recheck_after))
        return None

    def _gate(self, image: CachedImage) -> Gate | None:
        if image.spec.warm_up is None:
            return None
        key = f"{self.namespace}/{nodecache.record_name(image.metadata.uid or '')}"
        record = self.records.get(key)
        if record is None:
            self.decoded.forget(key)
            return Gate.of(image, cached_keys(image, None))  # version 1 (an image not migrated yet)
        identity = (meta(record).resource_version, image.reference)
        return Gate.of(image, self.decoded.recall(key, identity, lambda _: cached_keys(image, record)))

    def _released(self, node: Obj, release: Release) -> None:
        metrics.WARM_UP_DURATION.labels(outcome=release.outcome).observe(release.waited)
        waited = f"{release.waited:.0f}s"
        if release.outcome == "Warm":
            reason, type_ = "WarmedUp", "Normal"
            note = f"removed taint {release.key}: {release.gates} gating images cached after {waited}"
        else:
            reason, type_ = "WarmUpTimedOut", "Warning"
            missing = first_and_more(release.not_cached, 5)
            note = f"removed taint {release.key} after maxWait ({waited}) without {missing}"
        log.info("warming taint removed", node=meta(node).name, outcome=release.outcome, waited=waited)
        if self.recorder is not None:
            self.recorder.event(node, type_, reason, note, "RemoveTaint")
