"""CachedImage -> paced pull pods on the target nodes, results recorded, finished pods deleted.

The shell of a pass; the decisions are the pure functions of :mod:`.decide`. One pass over an image:

1. **Parse** the image (``CachedImage``) and its pull pods (:class:`~.pullpods.PullPod`) once.
2. **Recall** its memory (:class:`~.state.ImageState`, rebuilt from the object when new).
3. **Decide**: :func:`~.decide.read_pulls` sorts the pods; a finished pod's result is recorded
   (success -> node cached; failure -> per-node backoff and ``recentFailures``).
   :func:`~.decide.classify_nodes` says which target nodes need a pull.
4. **Apply**: under the pool's lock, count pulls in flight (informer + ledger of unseen creations)
   and create the pods :func:`~.pacing.decide_admission` allows.
5. **Status** and the node record (:mod:`.records`) are written only when they changed (while
   pulls go on, a change of counts alone at most every :data:`FLUSH_INTERVAL`), with transition
   Events; finished pods are deleted once their result is stored, the pulled ones of a flush in
   one ``deletecollection``.
6. **Requeue** when the next timer (backoff, min delay, deadline, re-pull) is due.

Nothing here scans the cluster: target nodes come from :class:`~.targetindex.TargetIndex` (kept up
to date by node events, which enqueue only the images a change concerns), and a pass classifies
only the nodes :class:`~.pending.Track` says it has to. Nothing blocks on a full pool either: the
pass ends, and the pass of an image whose pull ended hands the room it does not use to the images
waiting in the pool, best first (:meth:`CachedImageReconciler._hand_over`).
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections import Counter
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from typing import Any

from drop_operator.api import CachedImage, CachedImageStatus, PullPolicy
from drop_operator.controllers.cachedimage import metrics
from drop_operator.controllers.cachedimage.decide import (
    NodeClasses,
    Pulls,
    classify_nodes,
    count_nodes,
    deadline_slack,
    read_pulls,
    rollout_event,
    tolerations_of,
    warming_first,
    warming_nodes,
)
from drop_operator.controllers.cachedimage.imagelist import reported_names
from drop_operator.controllers.cachedimage.nodes import node_name
from drop_operator.controllers.cachedimage.pacing import (
    DEFAULT_POOL,
    Admission,
    Demand,
    Pacing,
    PendingPull,
    PoolGate,
    PoolGates,
    Priority,
    decide_admission,
    priority,
    reserved_slots,
)
from drop_operator.controllers.cachedimage.pending import NO_NODES, Track
from drop_operator.controllers.cachedimage.platforms import LABELS_ONLY, KnownPlatforms, PlatformResolver
from drop_operator.controllers.cachedimage.pullpods import (
    COMPONENT,
    LABEL_COMPONENT,
    LABEL_IMAGE,
    LABEL_NODE,
    LABEL_POOL,
    LABEL_REFERENCE,
    PodRequest,
    PullPod,
    build_pull_pod,
    is_active,
    pod_node,
)
from drop_operator.controllers.cachedimage.records import NodeRecords
from drop_operator.controllers.cachedimage.state import ImageState
from drop_operator.controllers.cachedimage.status import (
    NodeCounts,
    PlatformView,
    build_status,
    wire_digest,
)
from drop_operator.controllers.cachedimage.targetindex import TargetIndex
from drop_operator.controllers.common import label_value, meta, short_hash
from drop_operator.controllers.kinds import CACHED_IMAGES
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime import ApiError, EventRecorder, Informer, KubeClient, Result, Trigger
from drop_operator.runtime.clock import Clock, RealClock
from drop_operator.runtime.logging import get_logger
from drop_operator.runtime.memory import KeyedMemory
from drop_operator.runtime.resources import PODS

__all__ = [
    "ACTIVE_POOL_INDEX",
    "IMAGES_BY_POOL",
    "OWNER_INDEX",
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
ACTIVE_POOL_INDEX = "cachedimage.active-pool"
"""Pull pods in flight (:func:`~.pullpods.is_active`) by the (label form of the) pool they were
admitted under: what admission counts, read without parsing every pod of the pool."""
IMAGES_BY_POOL = "cachedimage.pool-of-image"
"""CachedImages by their pacing pool (:func:`pool_of`, on the raw object)."""

_DEFAULT_PACING = Pacing.default()

PARSED_IMAGES = 256
"""At most this many images are kept parsed between passes (about 10 KiB each)."""
FLUSH_INTERVAL = 10.0
"""At most one node-record write, and one status write that changes only counts, per image per
interval while pulls go on."""
DELETE_BATCH = 100
"""Pulled pods deleted by one ``deletecollection`` at most (bounds the label selector's length)."""
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


def _labels(obj: Obj) -> dict[str, str]:
    labels: dict[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels


def is_pull_pod(pod: Obj) -> bool:
    """Read on every pod event and pass: the raw labels, without parsing the metadata."""
    return _labels(pod).get(LABEL_COMPONENT) == COMPONENT


def pool_label(pod: Obj) -> str:
    """The (label form of the) pool a pull pod was admitted under."""
    return _labels(pod).get(LABEL_POOL, "")


@functools.lru_cache(maxsize=4096)
def _names(reference: str, digest: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(reported_names(reference, digest)))


def _material(status: dict[str, object]) -> dict[str, object]:
    """A status without what changes with every pull (counts in flight, messages, times): when only
    those changed, the write may wait while pulls go on."""
    out = {k: v for k, v in status.items() if k not in ("cachedNodes", "pullingNodes", "lastPulledTime")}
    conditions = status.get("conditions")
    if isinstance(conditions, list):
        out["conditions"] = [
            (c.get("type"), c.get("status"), c.get("reason")) for c in conditions if isinstance(c, dict)
        ]
    return out


def _version(obj: Obj) -> tuple[str, str] | None:
    """An object's (uid, resourceVersion), which name one state of it; None when either is unset."""
    metadata = obj.get("metadata") or {}
    uid, version = metadata.get("uid"), metadata.get("resourceVersion")
    return (str(uid), str(version)) if uid and version else None


def _keeps_transitions(previous: CachedImageStatus, built: CachedImageStatus) -> bool:
    """True when every condition of ``built`` has the status it had in ``previous`` (so it kept
    that one's transition time, and ``built`` does not depend on when it was built)."""
    before = {c.type: c.status for c in previous.conditions}
    return all(before.get(c.type) == c.status for c in built.conditions)


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
        records: Informer,
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
        self.records = NodeRecords(client, records, settings.namespace)
        self.recorder = recorder
        self.clock = clock or RealClock()
        self.rand = rand
        self.gates = PoolGates(self.clock.now)
        self.states: KeyedMemory[ImageState] = KeyedMemory()
        self.images_parsed: KeyedMemory[CachedImage] = KeyedMemory(limit=PARSED_IMAGES)
        """Images with work left (pulls in flight, or nodes waiting for one), parsed, by (uid,
        resourceVersion): their passes follow every pod event and every hand-over of room in the
        pool, and most find the object unchanged. Dropped when the image has nothing left to do."""
        self.pacings: KeyedMemory[Pacing] = KeyedMemory()
        """Pools -> their PullPolicy's pacing, by the policy's (uid, resourceVersion)."""
        self.waiting: dict[str, set[str]] = {}
        self.index = TargetIndex()
        """Target nodes by targeting, reported images by node (fed by :meth:`node_event`)."""
        self.tracks: dict[str, Track] = {}
        self.passed: set[str] = set()
        """Images whose stated demand is current: they had a pass since the last node change that
        concerned them."""
        self.parsed: dict[str, dict[str, tuple[str, PullPod]]] = {}
        """Image key -> pod uid -> (resourceVersion, the pod parsed): a pod is parsed once per change."""
        self.wake = Trigger()
        """Images a pass wakes (:meth:`_hand_over`); the wiring makes the controller watch it."""
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

    def node_event(self, node: Obj) -> list[str]:
        """A node was added, changed or deleted: the images it concerns (:meth:`TargetIndex.update`
        with the node as the cache holds it now, or its deletion), whose demands are now stale.

        The map function of the node watch. It is called with the old and the new state of an
        update; the index takes the cache's current state either way, so the second call finds
        nothing new.

        Until such an image has had its pass, admission in its pool keeps a slot for it when it
        ranks better (:meth:`_reserved`), so whichever image the queue hands a worker first, the
        best-ranked one gets the room.
        """
        current = self.nodes.get(node_name(node))
        keys = self.index.update(current) if current is not None else self.index.update(node, deleted=True)
        self.passed -= keys
        return sorted(keys)

    def take_waiting(self, pod: Obj) -> list[str]:
        """A pull of some pool ended and no pass of its own image will hand the room over (the image
        is gone, or uses another pool now): the images waiting for room in that pool.

        The map function of the pull-ended watch: the controller enqueues what it returns.
        """
        label = pool_label(pod)
        owner = self._owner(pod)
        if (
            owner is not None
            and label_value(image_pool(owner)) == label
            and not meta(owner).deletion_timestamp
        ):
            return []  # the owner's pass hands over what it does not use
        woken: list[str] = []
        for pool, keys in list(self.waiting.items()):
            if label_value(pool) == label:
                woken.extend(keys)
                keys.clear()
        return woken

    def _owner(self, pod: Obj) -> Obj | None:
        """The pod's controlling CachedImage, if the cache holds it (the same object: same uid)."""
        for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
            if ref.get("controller") and ref.get("kind") == CACHED_IMAGES.kind and ref.get("name"):
                found = self.images.get(str(ref["name"]))
                if found is not None and (found.get("metadata") or {}).get("uid") == ref.get("uid"):
                    return found
        return None

    # -- reconcile ---------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        obj = self.images.get(key)
        if obj is None:
            self._forget(key)
            return None
        image = self._parse(key, obj)  # parse once
        if image.metadata.deleting:
            self._forget(key)  # the garbage collector removes the pods with it
            return None
        pool = pool_of(image)
        pacing, pull_policy_problem = self._pacing(pool)
        state = self._recall(key, image, pacing)  # recall
        self.passed.add(key)
        now = self.clock.wall()
        tolerations = tolerations_of(image.spec)
        known = (
            self.platforms.lookup(image.reference, [s.name for s in image.spec.image_pull_secrets])
            if self.platforms is not None
            else LABELS_ONLY
        )
        # Targets from the index; only the nodes that changed or still wait are looked at.
        targeting, members = self.index.register(
            key, image.spec.node_selector, tolerations, _names(state.reference, state.digest)
        )
        dirty = self.index.take_dirty(key)
        track, full = self._track(key, state, targeting, known, members, dirty, now)
        state.prune(self.index.names)

        pulls = await self._settle_pulls(obj, image, state, pacing, now)  # decide + record results
        warming = warming_nodes(track.targets, image.spec, self.index.tainted)
        if full:
            check: AbstractSet[str] = track.targets
        else:
            fresh = pacing.max_concurrent_nodes + pacing.max_concurrent_pulls + len(pulls.active)
            check = track.check(dirty, fresh=fresh, warming=warming)
        classes = classify_nodes(
            {n: self.index.nodes[n] for n in check},
            state,
            pulling=pulls.active.keys(),
            reference=image.reference,
            image_pull_policy=image.spec.image_pull_policy,
            pacing=pacing,
            now=now,
        )
        classes.candidates = warming_first(classes.candidates, warming)
        self._remember_reports(obj, image, state, classes, now)
        settled = [p.node for p in pulls.finished]
        track.refresh([*check, *settled], self.index.keys)
        track.unflushed |= bool(settled or classes.reported or classes.gone)
        track.watch = {*classes.candidates, *classes.recheck} or NO_NODES
        classes.cached = track.cached_count(pulls.active.keys())
        if full:
            track.plan_full(now, pacing.repull_interval, self.index.keys)
        else:
            pulled = [self.index.keys[n] for n in settled if n in self.index.keys]
            track.note_cached([*pulled, *classes.reported], pacing.repull_interval)
        wakeups = pulls.wakeups + classes.wakeups + [max(MIN_REQUEUE, track.full_at - now)]
        targets = track.targets
        incompatible = track.incompatible

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
            if started:
                # The pods' deadline: no pod event wakes the image before its pull ends.
                wakeups.append(pacing.pull_timeout + deadline_slack(pacing.pull_timeout))
        else:
            self.gates.drop_demand(key)
        if pull_policy_problem is None:
            # Before the status and clean-up writes: the room this pass leaves is known now, and
            # the images waiting for it should not wait for those round trips too.
            self._hand_over(key, pool, pacing, priority(key, image.spec.rank))
        counts = count_nodes(targets, classes, state, pulling=pulls.active.keys(), started=started)
        busy = bool(counts.pulling or classes.candidates)  # more passes to come, on the same object
        self.totals.set(key, {s: getattr(counts, s) for s in metrics.STATES})

        state.rolling_out, reason, note = rollout_event(
            state.rolling_out, counts, started=bool(started), reference=image.reference
        )
        if reason is not None and note is not None:
            self._event(obj, "Normal", reason, note, "Pull")
        status_in = await self._write_status(  # status, only if changed
            obj,
            image,
            state,
            track,
            counts=counts,
            failing_nodes=classes.failing_nodes,
            pull_policy_problem=pull_policy_problem,
            warming=len(warming),
            platforms=_platform_view(known, len(incompatible)),
            busy=busy,
        )
        if status_in is not None:
            wakeups.append(status_in)
        wakeups += await self._clean_up(image, state, track, pulls, pulling_now=counts.pulling > 0)
        if not busy:
            self.images_parsed.forget(key)
        return Result(requeue_after=max(MIN_REQUEUE, min(wakeups))) if wakeups else None  # next check

    # -- steps -------------------------------------------------------------------------------------

    def _track(  # noqa: PLR0917 - one call site, all positional facts of the pass
        self,
        key: str,
        state: ImageState,
        targeting: str,
        known: KnownPlatforms | None,
        members: set[str],
        dirty: set[str],
        now: float,
    ) -> tuple[Track, bool]:
        """The image's :class:`~.pending.Track`, brought up to date; True when this pass is full."""
        platforms = known.platforms if known is not None else None
        track = self.tracks.get(key)
        if track is not None and track.fits(state, targeting, platforms) and now < track.full_at:
            track.apply_dirty(dirty, members, self.index.nodes, self.index.keys)
            return track, False
        if track is None or not track.fits(state, targeting, platforms):
            track = self.tracks[key] = Track(state, targeting, platforms)
        track.rebuild(members, self.index.nodes, self.index.keys)
        track.unflushed = True
        return track, True

    async def _settle_pulls(
        self, obj: Obj, image: CachedImage, state: ImageState, pacing: Pacing, now: float
    ) -> Pulls:
        """Read the image's pull pods; record each new result (the pod is deleted in ``_clean_up``)."""
        pods = self._pull_pods(image)
        for pod in pods:
            self.gates.observe(pod.name)  # counted from the cache now, and until deleted
        pulls = read_pulls(pods, reference=image.reference, pacing=pacing, now=now)
        for pod in pulls.moot:
            await self._delete(pod)  # the reference changed: this pull is moot
        for pod in pulls.finished:
            if pod.reference == image.reference and pod.uid not in state.recorded:
                self._record(obj, state, pod, pacing=pacing)
                state.mark_recorded(pod.uid)
        state.keep_recorded(pulls.live_uids)
        return pulls

    def _pull_pods(self, image: CachedImage) -> list[PullPod]:
        """The image's pull pods, each parsed once per change (by uid and resourceVersion)."""
        key = image.metadata.name
        before = self.parsed.get(key, {})
        now_parsed: dict[str, tuple[str, PullPod]] = {}
        now = self.clock.wall()
        for raw in self.pods.by_index(OWNER_INDEX, image.metadata.uid or ""):
            raw_meta = raw.get("metadata") or {}
            uid, version = str(raw_meta.get("uid") or ""), str(raw_meta.get("resourceVersion") or "")
            found = before.get(uid)
            if found is None or found[0] != version:
                if not is_pull_pod(raw):
                    continue
                found = (version, PullPod.parse(raw, now=now))
            now_parsed[uid] = found
        if now_parsed:
            self.parsed[key] = now_parsed
        else:  # most images have no pull pod most of the time: no empty dict for each
            self.parsed.pop(key, None)
        return [pod for _, pod in now_parsed.values()]

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
        self, image: CachedImage, state: ImageState, track: Track, pulls: Pulls, *, pulling_now: bool
    ) -> list[float]:
        """Delete finished pods once their result is stored in the object, so a crash loses nothing.

        A failure is stored in status (written before this); a success in the image's node record,
        which is written at most every :data:`FLUSH_INTERVAL` while pulls go on: until then the
        pulled pods stay, and the returned wakeup says when to flush. The pods of a flush that ran
        to completion go in one request (:meth:`_delete_succeeded`).
        """
        for pod in pulls.finished:
            if pod.outcome.state != "pulled":
                await self._delete(pod)
        flush_in = await self._flush_cached_nodes(image, state, track, pulling_now=pulling_now)
        if flush_in is not None:
            return [flush_in]
        pulled = [pod for pod in pulls.finished if pod.outcome.state == "pulled"]
        succeeded = [
            pod
            for pod in pulled
            if pod.reference == image.reference and (pod.obj.get("status") or {}).get("phase") == "Succeeded"
        ]
        if len(succeeded) < 2:
            succeeded = []
        batched = {id(pod) for pod in succeeded}
        for pod in pulled:
            if id(pod) not in batched:
                await self._delete(pod)
        await self._delete_succeeded(image, succeeded)
        return []

    async def _delete_succeeded(self, image: CachedImage, pods: list[PullPod]) -> None:
        """Delete these pulled pods of the image's current reference with ``deletecollection``.

        The selector names the image, the reference and each pod's node, and only pods that
        ``Succeeded``: a pull pod's name is one per (image, reference, node), so nothing else
        matches, and a newer pod on one of these nodes (a re-pull) has not succeeded yet.
        """
        selector = (
            f"{LABEL_COMPONENT}={COMPONENT},{LABEL_IMAGE}={label_value(image.metadata.name)},"
            f"{LABEL_REFERENCE}={short_hash(image.reference)}"
        )
        nodes = sorted({short_hash(pod.node) for pod in pods})
        for start in range(0, len(nodes), DELETE_BATCH):
            batch = ",".join(nodes[start : start + DELETE_BATCH])
            await self.client.delete_collection(
                PODS,
                self.settings.namespace,
                label_selector=f"{selector},{LABEL_NODE} in ({batch})",
                field_selector="status.phase=Succeeded",
            )

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

    def _parse(self, key: str, obj: Obj) -> CachedImage:
        """The image parsed; reused while uid and resourceVersion hold (see :attr:`images_parsed`)."""
        version = _version(obj)
        if version is None:
            return CachedImage.from_obj(obj)
        return self.images_parsed.recall(key, version, lambda _: CachedImage.from_obj(obj))

    def _pacing(self, pool: str) -> tuple[Pacing, str | None]:
        if pool == DEFAULT_POOL:
            return _DEFAULT_PACING, None
        obj = self.policies.get(pool)
        if obj is None:
            self.pacings.forget(pool)
            return _DEFAULT_PACING, f"PullPolicy {pool!r} does not exist; no pulls start until it does"

        def parse(_: Pacing | None) -> Pacing:
            return Pacing.from_spec(PullPolicy.from_obj(obj).spec)

        version = _version(obj)
        return (parse(None) if version is None else self.pacings.recall(pool, version, parse)), None

    def _recall(self, key: str, image: CachedImage, pacing: Pacing) -> ImageState:
        """Memory for the image; rebuilt from the object when new, recreated, or re-referenced.

        Failures in status are used to seed backoff only for the same object and reference (a
        fresh process); a changed reference starts from nothing, as nothing is known about it.
        """
        uid = image.metadata.uid or ""
        reference = image.reference  # one string for the memory and its identity (kept per image)

        def load(previous: ImageState | None) -> ImageState:
            return ImageState.load(
                uid,
                reference,
                self.records.stored(image),
                recent=list(image.status.recent_failures) if previous is None else [],
                pacing=pacing,
                rand=self.rand,
            )

        return self.states.recall(key, (uid, reference), load)

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
            other_meta = other.get("metadata") or {}
            other_key = str(other_meta.get("name") or "")
            if other_key == key or other_meta.get("deletionTimestamp"):
                continue
            if other_key in self.passed:
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
        bodies: list[tuple[str, dict[str, Any]]] = []
        async with gate.lock:
            # No await from reading the counts to recording the admitted pods in the ledger: the
            # creations below run outside the lock, already counted, so the next admission in the
            # pool never waits for the API server's answers to this one.
            pool_pods = self.pods.by_index(ACTIVE_POOL_INDEX, label_value(pool))
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
                gate.record(
                    PendingPull(body["metadata"]["name"], image.metadata.name, node, self.clock.now())
                )
                bodies.append((node, body))
            started_now = set(admission.start)
            self._state_demand(
                key,
                pool,
                mine,
                [
                    n
                    for n in candidates
                    if n not in started_now and node_in_flight[n] < pacing.max_pulls_per_node
                ],
                room=pacing.max_concurrent_nodes - image_in_flight - len(started_now),
            )
        created = await asyncio.gather(*(self._create_pull(obj, gate, node, body) for node, body in bodies))
        started = [node for node, ok in zip(admission.start, created, strict=True) if ok]
        return admission, started

    async def _create_pull(self, obj: Obj, gate: PoolGate, node: str, body: dict[str, Any]) -> bool:
        """Create one admitted pull pod (already in the ledger); True when it started now."""
        name = body["metadata"]["name"]
        try:
            await self.client.create(PODS, body, namespace=self.settings.namespace)
        except ApiError as err:
            if err.already_exists:
                return False  # a pod from an earlier pass; the ledger keeps counting it until seen
            gate.forget(name)
            self._event(obj, "Warning", "PullPodFailed", f"could not create pull pod: {err}", "Create")
            log.warning("creating pull pod failed", node=node, error=str(err))
            return False
        return True

    def _hand_over(self, key: str, pool: str, pacing: Pacing, mine: Priority) -> None:
        """Wake the images waiting for room in ``pool``, best first, as far as there is room now.

        Run once a pass has started its pulls, before its status and clean-up writes: the pass of
        an image whose pull ended has taken what it was entitled to, and what is left goes to the
        waiting images that rank best, at once, instead of to whichever image a pull-ended event
        happened to wake, and without waiting for those round trips. An image that is waiting itself
        (room it could not use: its nodes are busy) passes it on only to waiting images ranked after
        it that still could start something, so a chain of hand-overs always ends.
        """
        waiting = self.waiting.get(pool)
        if not waiting:
            return
        gate = self.gates.gate(pool)
        if key in waiting:
            takers = {o for o in waiting if (d := gate.demands.get(o)) is not None and d.priority > mine}
        else:
            takers = waiting - {key}
        if not takers:
            return
        namespace = self.settings.namespace
        in_flight = self.pods.index_count(ACTIVE_POOL_INDEX, label_value(pool))
        in_flight += len(gate.unseen(lambda name: self.pods.get(f"{namespace}/{name}") is not None))
        room = pacing.max_concurrent_pulls - in_flight
        if room <= 0:
            return
        last = (2, 0, "")  # after every priority: no demand stated

        def rank(other: str) -> Priority:
            demand = gate.demands.get(other)
            return demand.priority if demand is not None else last

        woken: list[str] = []
        for other in sorted(takers, key=rank):
            if room <= 0:
                break
            waiting.discard(other)
            demand = gate.demands.get(other)
            room -= demand.slots if demand is not None else 1
            woken.append(other)
        self.wake.fire(woken)

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
        track: Track,
        *,
        counts: NodeCounts,
        failing_nodes: set[str],
        pull_policy_problem: str | None,
        warming: int,
        platforms: PlatformView,
        busy: bool,
    ) -> float | None:
        """Write status if it changed; returns when to look again if a write was put off.

        While the image is ``busy`` (pulls in flight, or nodes waiting for one), many passes feed it
        what the last one did: then the outcome of that one (:attr:`ImageState.status_memo`) stands,
        without building and comparing the status again.
        """
        last_pulled = state.last_pulled.replace(microsecond=0) if state.last_pulled else None
        version = _version(obj)
        inputs = (
            (
                version,
                counts,
                tuple(state.recent),
                frozenset(failing_nodes),
                state.digest,
                last_pulled,
                pull_policy_problem,
                warming,
                platforms,
            )
            if busy and version is not None
            else None
        )
        memo, state.status_memo = state.status_memo, None
        if inputs is not None and memo is not None and memo[0] == inputs:
            if memo[1] is None:
                state.status_memo = memo
                return None
            if memo[1] == track.status_at:
                wait = memo[1] + FLUSH_INTERVAL - self.clock.now()
                if wait > 0:
                    state.status_memo = memo
                    return wait
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
        digest = wire_digest(wire)
        # A condition that changes status takes the current second as its transition time: such a
        # status is built anew on each pass, never taken for the one before.
        timeless = _keeps_transitions(image.status, status)
        if digest == state.written_status:
            state.status_memo = (inputs, None) if inputs is not None and timeless else None
            return None
        stored = image.status.to_json()
        if wire == stored:
            state.status_memo = (inputs, None) if inputs is not None and timeless else None
            return None
        # While pulls go on, counts alone are written at most every FLUSH_INTERVAL; anything else
        # (conditions, failures, targets, the end of the rollout) at once.
        material = wire_digest(_material(wire))
        since = state.written_material or wire_digest(_material(stored))
        if counts.pulling and track.status_at is not None and material == since:
            wait = track.status_at + FLUSH_INTERVAL - self.clock.now()
            if wait > 0:
                state.status_memo = (inputs, track.status_at) if inputs is not None else None
                return wait
        try:
            await self.client.patch_status(CACHED_IMAGES, image.metadata.name, {"status": wire})
        except ApiError as err:
            if err.not_found:
                return None
            raise
        state.written_status = digest
        state.written_material = material
        track.status_at = self.clock.now()
        return None

    async def _flush_cached_nodes(
        self, image: CachedImage, state: ImageState, track: Track, *, pulling_now: bool
    ) -> float | None:
        """Write the image's node record if it changed; at most every FLUSH_INTERVAL while pulling.

        Only when a pass changed what the image's memory holds (``track.unflushed``).
        """
        if not track.unflushed:
            return None
        wait = await self.records.flush(
            image,
            state,
            keep=set(self.index.keys.values()),
            pulling_now=pulling_now,
            now=self.clock.now(),
            interval=FLUSH_INTERVAL,
        )
        if wait is None:
            track.unflushed = False
        return wait

    def _event(self, obj: Obj, type_: str, reason: str, note: str, action: str) -> None:
        if self.recorder is not None:
            self.recorder.event(obj, type_, reason, note, action)

    def _forget(self, key: str) -> None:
        self.states.forget(key)
        self.images_parsed.forget(key)
        self.gates.drop_demand(key)
        self.passed.discard(key)
        self.index.forget(key)
        self.tracks.pop(key, None)
        self.parsed.pop(key, None)
        self.totals.remove(key)
        for keys in self.waiting.values():
            keys.discard(key)
