"""CachedImage -> paced pull pods on the target nodes, results recorded, finished pods deleted.

The shell of a pass; the decisions are the pure functions of :mod:`.decide`. One pass over an image:

1. **Parse** the image (``CachedImage``) and its pull pods (:class:`~.pullpods.PullPod`) once.
2. **Recall** its memory (:class:`~.state.ImageState`, rebuilt from the object when new).
3. **Decide**: :func:`~.decide.read_pulls` sorts the pods; a finished pod's result is recorded
   (success -> node cached; failure -> per-node backoff and ``recentFailures``).
   :func:`~.decide.classify_nodes` says which target nodes need a pull.
4. **Apply**: under the pool's lock, count pulls in flight (informer + ledger of unseen creations)
   and create the pods :func:`~.pacing.decide_admission` allows.
5. **Status** and the cached-nodes annotation are written only when they changed, with transition
   Events; finished pods are deleted once their result is stored in the object.
6. **Requeue** when the next timer (backoff, min delay, deadline, re-pull) is due.

Nothing here blocks on a full pool: the pass ends, and a pod finishing anywhere in the pool wakes
the images that were waiting for room.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from drop_operator.api import CachedImage, CachedImageStatus, PullPolicy
from drop_operator.controllers.cachedimage import metrics
from drop_operator.controllers.cachedimage.decide import (
    NodeClasses,
    Pulls,
    classify_nodes,
    count_nodes,
    read_pulls,
    rollout_event,
    tolerations_of,
    warming_first,
    warming_nodes,
)
from drop_operator.controllers.cachedimage.nodes import node_name, select_targets, split_by_platform
from drop_operator.controllers.cachedimage.pacing import (
    DEFAULT_POOL,
    Admission,
    Demand,
    Pacing,
    PendingPull,
    PoolGates,
    Priority,
    decide_admission,
    priority,
    reserved_slots,
)
from drop_operator.controllers.cachedimage.platforms import LABELS_ONLY, KnownPlatforms, PlatformResolver
from drop_operator.controllers.cachedimage.pullpods import (
    COMPONENT,
    LABEL_COMPONENT,
    LABEL_POOL,
    PodRequest,
    PullPod,
    build_pull_pod,
    is_active,
    pod_node,
)
from drop_operator.controllers.cachedimage.state import ImageState
from drop_operator.controllers.cachedimage.status import NodeCounts, PlatformView, build_status, wire_digest
from drop_operator.controllers.common import label_value, meta, nodecache
from drop_operator.controllers.kinds import CACHED_IMAGES
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime import ApiError, EventRecorder, Informer, KubeClient, Result
from drop_operator.runtime.clock import Clock, RealClock
from drop_operator.runtime.logging import get_logger
from drop_operator.runtime.memory import KeyedMemory
from drop_operator.runtime.resources import PODS

__all__ = [
    "IMAGES_BY_POOL",
    "OWNER_INDEX",
    "POOL_INDEX",
    "CachedImageReconciler",
    "image_pool",
    "is_pull_pod",
    "pool_label",
    "pool_of",
]

log = get_logger(__name__)

Obj = dict[str, Any]

OWNER_INDEX = "cachedimage.owner-uid"
"""Pods by the uid of their controlling CachedImage."""
POOL_INDEX = "cachedimage.pool"
"""Pull pods by the (label form of the) pool they were admitted under."""
IMAGES_BY_POOL = "cachedimage.pool-of-image"
"""CachedImages by their pacing pool (:func:`pool_of`, on the raw object)."""

FLUSH_INTERVAL = 10.0
"""At most one cached-nodes annotation write per image per interval while pulls go on."""
POOL_RECHECK = 5.0
"""Fallback re-check of an image waiting for room in its pool (pod events normally wake it first)."""
MIN_REQUEUE = 0.05
"""Shortest requeue asked for, so a timer due right now never becomes a busy loop."""
PLATFORM_POLL = 0.25
"""Re-check of an image whose platforms are being resolved for the first time (no pull starts until
then, so a node that lacks the platform never gets one)."""


def pool_of(image: CachedImage) -> str:
    """The pacing pool of an image: its PullPolicy's name, or the shared default pool."""
    ref = image.spec.pull_policy_ref
    return ref.name if ref is not None else DEFAULT_POOL


def image_pool(image: Obj) -> str:
    """:func:`pool_of` on an unparsed CachedImage, for the :data:`IMAGES_BY_POOL` index."""
    return str(((image.get("spec") or {}).get("pullPolicyRef") or {}).get("name") or DEFAULT_POOL)


def _raw_rank(image: Obj) -> int | None:
    rank = (image.get("spec") or {}).get("rank")
    return rank if isinstance(rank, int) else None


def is_pull_pod(pod: Obj) -> bool:
    return meta(pod).labels.get(LABEL_COMPONENT) == COMPONENT


def pool_label(pod: Obj) -> str:
    """The (label form of the) pool a pull pod was admitted under."""
    return meta(pod).labels.get(LABEL_POOL, "")


def _platform_view(known: KnownPlatforms | None, incompatible: int) -> PlatformView:
    if known is None:
        return PlatformView()
    names = tuple(sorted(str(p) for p in known.platforms or ()))
    return PlatformView(platforms=names, incompatible=incompatible, problem=known.problem)


class CachedImageReconciler:
    """Reconciles one CachedImage per call; shared state (pools, memory) lives on the instance."""

    def __init__(
        self,
        client: KubeClient,
        settings: OperatorSettings,
        *,
        images: Informer,
        policies: Informer,
        nodes: Informer,
        pods: Informer,
        recorder: EventRecorder | None,
        clock: Clock | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.settings = settings
        self.images = images
        self.policies = policies
        self.nodes = nodes
        self.pods = pods
        self.recorder = recorder
        self.clock = clock or RealClock()
        self.rand = rand
        self.gates = PoolGates(self.clock.now)
        self.states: KeyedMemory[ImageState] = KeyedMemory()
        self.waiting: dict[str, set[str]] = {}
        self.node_epoch = 0
        """Bumped by every node change that may give images new candidates (:meth:`nodes_changed`)."""
        self.passed: dict[str, int] = {}
        """Image key -> the node epoch of its last pass: its stated demand is current when equal."""
        self.totals = metrics.NodeTotals()
        self.platforms = (
            PlatformResolver(client, settings.namespace, clock=self.clock.now)
            if settings.platform_lookup
            else None
        )
        metrics.PULLS_IN_FLIGHT.set_function(self.pulls_in_flight)

    # -- informer hooks ----------------------------------------------------------------------------

    def pulls_in_flight(self) -> float:
        return float(sum(1 for p in self.pods.list() if is_pull_pod(p) and is_active(p)))

    def nodes_changed(self, _node: Obj) -> list[str]:
        """A node changed in what targeting looks at: every image, whose demands are now stale.

        The map function of the node watch. Until an image has had its pass, admission in its pool
        keeps a slot for it when it ranks better (:meth:`_reserved`), so whichever image the queue
        hands a worker first, the best-ranked one gets the room.
        """
        self.node_epoch += 1
        return self.images.keys()

    def take_waiting(self, pod: Obj) -> list[str]:
        """A pull of some pool ended: the images waiting for room in that pool, which stop waiting.

        The map function of the pull-ended watch: the controller enqueues what it returns.
        """
        label = pool_label(pod)
        woken: list[str] = []
        for pool, keys in list(self.waiting.items()):
            if label_value(pool) == label:
                woken.extend(keys)
                keys.clear()
        return woken

    # -- reconcile ---------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        obj = self.images.get(key)
        if obj is None:
            self._forget(key)
            return None
        image = CachedImage.from_obj(obj)  # parse once
        if image.metadata.deleting:
            self._forget(key)  # the garbage collector removes the pods with it
            return None
        pool = pool_of(image)
        pacing, pull_policy_problem = self._pacing(pool)
        state = self._recall(key, image, pacing)  # recall
        self.passed[key] = self.node_epoch
        now = self.clock.wall()
        all_nodes = self.nodes.list()
        tolerations = tolerations_of(image.spec)
        known = (
            self.platforms.lookup(image.reference, [s.name for s in image.spec.image_pull_secrets])
            if self.platforms is not None
            else LABELS_ONLY
        )
        targets, incompatible = split_by_platform(
            select_targets(all_nodes, image.spec.node_selector, tolerations),
            known.platforms if known is not None else None,
        )
        warming = warming_nodes(targets, image.spec)
        state.prune({node_name(n) for n in all_nodes})

        pulls = await self._settle_pulls(obj, image, state, pacing, now)  # decide + record results
        classes = classify_nodes(
            targets,
            state,
            pulling=pulls.active.keys(),
            reference=image.reference,
            image_pull_policy=image.spec.image_pull_policy,
            pacing=pacing,
            now=now,
        )
        classes.candidates = warming_first(classes.candidates, warming)
        self._remember_reports(obj, image, state, classes, now)
        wakeups = pulls.wakeups + classes.wakeups

        started: list[str] = []  # apply
        if known is None and classes.candidates and pull_policy_problem is None:
            # Platforms not known yet: state the demand (so worse-ranked images keep their hands off
            # the slots), start nothing, and look again shortly.
            self._state_demand(
                key,
                pool,
                priority(key, image.spec.rank, warming=bool(warming.intersection(classes.candidates))),
                classes.candidates,
                room=pacing.max_concurrent_nodes - len(pulls.active),
            )
            wakeups.append(PLATFORM_POLL)
        elif classes.candidates and pull_policy_problem is None:
            started, wakeup = await self._start_pulls(
                key,
                obj,
                image,
                pool=pool,
                pacing=pacing,
                classes=classes,
                pulls=pulls,
                warming=bool(warming.intersection(classes.candidates)),
            )
            wakeups += wakeup
        else:
            self.gates.drop_demand(key)
        counts = count_nodes(targets.keys(), classes, state, pulling=pulls.active.keys(), started=started)
        self.totals.set(key, {s: getattr(counts, s) for s in metrics.STATES})

        state.rolling_out, reason, note = rollout_event(
            state.rolling_out, counts, started=bool(started), reference=image.reference
        )
        if reason is not None and note is not None:
            self._event(obj, "Normal", reason, note, "Pull")
        await self._write_status(  # status, only if changed
            obj,
            image,
            state,
            counts=counts,
            failing_nodes=classes.failing_nodes,
            pull_policy_problem=pull_policy_problem,
            warming=len(warming),
            platforms=_platform_view(known, len(incompatible)),
        )
        wakeups += await self._clean_up(image, state, pulls, pulling_now=counts.pulling > 0)
        return Result(requeue_after=max(MIN_REQUEUE, min(wakeups))) if wakeups else None  # next check

    # -- steps -------------------------------------------------------------------------------------

    async def _settle_pulls(
        self, obj: Obj, image: CachedImage, state: ImageState, pacing: Pacing, now: float
    ) -> Pulls:
        """Read the image's pull pods; record each new result (the pod is deleted in ``_clean_up``)."""
        pods = [
            PullPod.parse(p, now=now)
            for p in self.pods.by_index(OWNER_INDEX, image.metadata.uid or "")
            if is_pull_pod(p)
        ]
        for pod in pods:
            self.gates.observe(pod.name)  # counted from the cache now, and until deleted
        pulls = read_pulls(pods, reference=image.reference, pacing=pacing, now=now)
        for pod in pulls.moot:
            await self._delete(pod)  # the reference changed: this pull is moot
        for pod in pulls.finished:
            if pod.reference == image.reference and pod.uid not in state.recorded:
                self._record(obj, state, pod, pacing=pacing)
                state.recorded.add(pod.uid)
        state.recorded &= pulls.live_uids
        return pulls

    async def _start_pulls(
        self,
        key: str,
        obj: Obj,
        image: CachedImage,
        *,
        pool: str,
        pacing: Pacing,
        classes: NodeClasses,
        pulls: Pulls,
        warming: bool,
    ) -> tuple[list[str], list[float]]:
        """Admit and create pull pods; returns the nodes started and when to look again."""
        admission, started = await self._admit(
            key,
            obj,
            image,
            pool=pool,
            pacing=pacing,
            candidates=classes.candidates,
            image_in_flight=len(pulls.active),
            warming=warming,
        )
        wakeups = [admission.retry_after] if admission.retry_after is not None else []
        if admission.blocked_by in ("maxConcurrentPulls", "maxPullsPerNode"):
            self.waiting.setdefault(pool, set()).add(key)  # woken when a pull of the pool ends
            wakeups.append(POOL_RECHECK)
        return started, wakeups

    async def _clean_up(
        self, image: CachedImage, state: ImageState, pulls: Pulls, *, pulling_now: bool
    ) -> list[float]:
        """Delete finished pods once their result is stored in the object, so a crash loses nothing.

        A failure is stored in status (written before this); a success in the cached-nodes
        annotation, which is written at most every :data:`FLUSH_INTERVAL` while pulls go on:
        until then the pulled pods stay, and the returned wakeup says when to flush.
        """
        for pod in pulls.finished:
            if pod.outcome.state != "pulled":
                await self._delete(pod)
        flush_in = await self._flush_cached_nodes(image, state, pulling_now=pulling_now)
        if flush_in is not None:
            return [flush_in]
        for pod in pulls.finished:
            if pod.outcome.state == "pulled":
                await self._delete(pod)
        return []

    def _remember_reports(
        self, obj: Obj, image: CachedImage, state: ImageState, classes: NodeClasses, now: float
    ) -> None:
        """What the kubelets' ``status.images`` said: nodes holding the image, nodes that lost it."""
        state.cached.update(dict.fromkeys(classes.reported, now))
        state.size = classes.size or state.size
        for nkey in classes.gone:
            del state.cached[nkey]  # the kubelet removed it: one paced re-pull, like a new node
        if classes.gone:
            count = len(classes.gone)
            note = f"{image.reference} removed from {count} node(s) by the kubelet; pulling it again"
            self._event(obj, "Normal", "ImageRemoved", note, "Pull")
            log.info("image gone from nodes", image=image.metadata.name, nodes=count)

    # -- pieces --------------------------------------------------------------------------------------

    def _pacing(self, pool: str) -> tuple[Pacing, str | None]:
        if pool == DEFAULT_POOL:
            return Pacing.default(), None
        obj = self.policies.get(pool)
        if obj is None:
            return Pacing.default(), f"PullPolicy {pool!r} does not exist; no pulls start until it does"
        return Pacing.from_spec(PullPolicy.from_obj(obj).spec), None

    def _recall(self, key: str, image: CachedImage, pacing: Pacing) -> ImageState:
        """Memory for the image; rebuilt from the object when new, recreated, or re-referenced.

        Failures in status are used to seed backoff only for the same object and reference (a
        fresh process); a changed reference starts from nothing, as nothing is known about it.
        """
        uid = image.metadata.uid or ""

        def load(previous: ImageState | None) -> ImageState:
            return ImageState.load(
                uid,
                image.reference,
                image.metadata.annotations.get(nodecache.ANNOTATION),
                recent=list(image.status.recent_failures) if previous is None else [],
                pacing=pacing,
                rand=self.rand,
            )

        return self.states.recall(key, (uid, image.reference), load)

    def _utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.clock.wall(), tz=UTC).replace(microsecond=0)

    def _record(self, obj: Obj, state: ImageState, pod: PullPod, *, pacing: Pacing) -> None:
        node, result = pod.node, pod.outcome
        finished = result.finished or self._utcnow()
        duration = max(0.0, finished.timestamp() - pod.created)
        if result.state == "pulled":
            metrics.PULL_DURATION.labels(result="pulled").observe(duration)
            if state.record_success(node, finished, result.digest):
                self._event(obj, "Normal", "PullRecovered", f"pulled on node {node} after failures", "Pull")
            return
        metrics.PULL_DURATION.labels(result="failed").observe(duration)
        metrics.PULL_FAILURES.labels(reason=metrics.failure_reason_label(result.reason)).inc()
        previous = state.failures.get(node)
        failure = state.record_failure(
            node,
            result.reason,
            result.message,
            when=datetime.fromtimestamp(self.clock.wall(), tz=UTC),
            pacing=pacing,
            rand=self.rand(),
        )
        if previous is None or previous.reason != result.reason:
            note = f"pull on node {node} failed: {result.reason}"
            if result.message:
                note += f": {result.message[:300]}"
            self._event(obj, "Warning", "PullFailed", note, "Pull")
        log.info(
            "pull failed",
            node=node,
            reason=result.reason,
            failures=failure.failures,
            retry_in=round(failure.retry_at - self.clock.wall(), 2),
        )

    def _reserved(self, key: str, pool: str, mine: Priority, demands: dict[str, Demand]) -> int:
        """Slots kept for better-ranked images of ``pool``: their stated demands, plus one for each
        image of the pool that has not had a pass since the last node change (just created, after a
        restart, or a node joined), so the first pass of a low-ranked image does not take the slot
        the top image is about to ask for."""
        reserved = reserved_slots(mine, demands, now=self.clock.now())
        for other in self.images.by_index(IMAGES_BY_POOL, pool):
            other_meta = meta(other)
            other_key = other_meta.name
            if other_key == key or other_meta.deletion_timestamp:
                continue
            if self.passed.get(other_key, -1) >= self.node_epoch:
                continue  # its demand (or none) is current
            if priority(other_key, _raw_rank(other)) < mine:
                reserved += 1
        return reserved

    async def _admit(
        self,
        key: str,
        obj: Obj,
        image: CachedImage,
        *,
        pool: str,
        pacing: Pacing,
        candidates: list[str],
        image_in_flight: int,
        warming: bool,
    ) -> tuple[Admission, list[str]]:
        gate = self.gates.gate(pool)
        namespace = self.settings.namespace
        started: list[str] = []
        async with gate.lock:
            pool_pods = [p for p in self.pods.by_index(POOL_INDEX, label_value(pool)) if is_active(p)]
            unseen = gate.unseen(lambda name: self.pods.get(f"{namespace}/{name}") is not None)
            node_in_flight = Counter(pod_node(p) for p in pool_pods)
            node_in_flight.update(p.node for p in unseen)
            mine = priority(key, image.spec.rank, warming=warming)
            image_in_flight += sum(1 for p in unseen if p.image == image.metadata.name)
            admission = decide_admission(
                candidates,
                pacing,
                image_in_flight=image_in_flight,
                pool_in_flight=len(pool_pods) + len(unseen),
                node_in_flight=node_in_flight,
                last_start=gate.last_start,
                now=self.clock.now(),
                reserved=self._reserved(key, pool, mine, gate.demands),
            )
            for node in admission.start:
                request = PodRequest(
                    namespace=namespace,
                    image_name=image.metadata.name,
                    image_uid=image.metadata.uid or "",
                    reference=image.reference,
                    node=node,
                    pool=pool,
                    image_pull_policy=image.spec.image_pull_policy,
                    image_pull_secrets=image.spec.image_pull_secrets,
                    tolerations=tolerations_of(image.spec),
                    pull_timeout=pacing.pull_timeout,
                    operator_image=self.settings.operator_image,
                    noop_path=self.settings.noop_path,
                    operator_image_pull_secrets=self.settings.operator_image_pull_secrets,
                )
                body = build_pull_pod(request)
                name = body["metadata"]["name"]
                gate.record(PendingPull(name, image.metadata.name, node, self.clock.now()))
                try:
                    await self.client.create(PODS, body, namespace=namespace)
                except ApiError as err:
                    if err.already_exists:
                        continue  # a pod from an earlier pass; the ledger keeps counting it until seen
                    gate.forget(name)
                    self._event(
                        obj, "Warning", "PullPodFailed", f"could not create pull pod: {err}", "Create"
                    )
                    log.warning("creating pull pod failed", node=node, error=str(err))
                    break
                started.append(node)
            self._state_demand(
                key,
                pool,
                mine,
                [n for n in candidates if n not in started and node_in_flight[n] < pacing.max_pulls_per_node],
                room=pacing.max_concurrent_nodes - image_in_flight - len(started),
            )
        return admission, started

    def _state_demand(self, key: str, pool: str, mine: Priority, free: list[str], *, room: int) -> None:
        """Leave what the image still could start as its demand in the pool: its ``free`` candidates
        (not started, node not at its limit), at most ``room`` (its ``maxConcurrentNodes`` left)."""
        self.gates.drop_demand(key, keep_in=pool)
        gate = self.gates.gate(pool)
        slots = min(room, len(free))
        if slots > 0:
            gate.demands[key] = Demand(mine, slots, self.clock.now())
        else:
            gate.demands.pop(key, None)

    async def _delete(self, pod: PullPod) -> None:
        try:
            await self.client.delete(PODS, pod.name, namespace=pod.namespace, uid=pod.uid or None)
        except ApiError as err:
            if err.status != 409:  # 409: precondition failed, a newer pod of that name exists
                raise

    async def _write_status(
        self,
        obj: Obj,
        image: CachedImage,
        state: ImageState,
        *,
        counts: NodeCounts,
        failing_nodes: set[str],
        pull_policy_problem: str | None,
        warming: int,
        platforms: PlatformView,
    ) -> None:
        last_pulled = state.last_pulled.replace(microsecond=0) if state.last_pulled else None
        status = build_status(
            image.status,
            generation=image.metadata.generation,
            counts=counts,
            failures=state.recent,
            failing_nodes=failing_nodes,
            resolved_digest=state.digest,
            last_pulled=last_pulled,
            pull_policy_problem=pull_policy_problem,
            warming=warming,
            platforms=platforms,
        )
        wire = status.to_json()
        stored = CachedImageStatus.model_validate(obj.get("status") or {}).to_json()
        if wire == stored or wire_digest(wire) == state.written_status:
            return
        try:
            await self.client.patch_status(CACHED_IMAGES, image.metadata.name, {"status": wire})
        except ApiError as err:
            if err.not_found:
                return
            raise
        state.written_status = wire_digest(wire)

    async def _flush_cached_nodes(
        self, image: CachedImage, state: ImageState, *, pulling_now: bool
    ) -> float | None:
        """Write the cached-nodes annotation if it changed; at most every FLUSH_INTERVAL while pulling."""
        encoded = nodecache.encode(
            image.reference, state.cached, keep={nodecache.node_key(node_name(n)) for n in self.nodes.list()}
        )
        current = image.metadata.annotations.get(nodecache.ANNOTATION)
        if encoded in (current, state.written_annotation) or (current is None and not state.cached):
            return None
        wait = state.last_flush + FLUSH_INTERVAL - self.clock.now()
        if pulling_now and wait > 0:
            return wait
        try:
            await self.client.patch(
                CACHED_IMAGES,
                image.metadata.name,
                {"metadata": {"annotations": {nodecache.ANNOTATION: encoded}}},
            )
        except ApiError as err:
            if err.not_found:
                return None
            raise
        state.written_annotation = encoded
        state.last_flush = self.clock.now()
        return None

    def _event(self, obj: Obj, type_: str, reason: str, note: str, action: str) -> None:
        if self.recorder is not None:
            self.recorder.event(obj, type_, reason, note, action)

    def _forget(self, key: str) -> None:
        self.states.forget(key)
        self.gates.drop_demand(key)
        self.passed.pop(key, None)
        self.totals.remove(key)
        for keys in self.waiting.values():
            keys.discard(key)
