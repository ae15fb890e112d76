"""CachedImage -> paced pull pods on the target nodes, results recorded, finished pods deleted.

One pass over an image:

1. Read the image's pull pods from the Pod informer. A finished pod's result is recorded (success
   -> node cached; failure -> per-node backoff and ``recentFailures``), *then* the pod is deleted.
   A pod still unfinished past ``pullTimeout`` (plus slack) is a ``Timeout`` even if no kubelet
   enforced ``activeDeadlineSeconds`` (a Pending pod on a dead node never starts its deadline).
2. Classify every target node: pulling, cached (and not due for a re-pull), failing (in backoff),
   or a candidate.
3. Under the pool's lock, count pulls in flight (informer + ledger of unseen creations) and start
   what :func:`~.pacing.plan_admission` allows.
4. Write status and the cached-nodes annotation only when they changed, emit transition Events,
   and ask to be called again when the next timer (backoff, min delay, deadline, re-pull) is due.

Nothing here blocks on a full pool: the pass ends, and a pod finishing anywhere in the pool wakes
the images that were waiting for room.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from drop_operator.api import CachedImage, CachedImageStatus, PullPolicy, format_duration, utcnow
from drop_operator.controllers.cachedimage import metrics, nodecache
from drop_operator.controllers.cachedimage.nodes import node_images, node_name, select_targets
from drop_operator.controllers.cachedimage.pacing import (
    DEFAULT_POOL,
    Admission,
    Pacing,
    PendingPull,
    PolicyGates,
    plan_admission,
    repull_due,
)
from drop_operator.controllers.cachedimage.pullpods import (
    ANNOTATION_REFERENCE,
    COMPONENT,
    LABEL_COMPONENT,
    LABEL_POOL,
    Outcome,
    PodRequest,
    build_pull_pod,
    is_active,
    outcome,
    pod_node,
)
from drop_operator.controllers.cachedimage.state import ImageState
from drop_operator.controllers.cachedimage.status import NodeCounts, build_status
from drop_operator.controllers.common import label_value, meta, parse_time
from drop_operator.controllers.kinds import CACHED_IMAGES
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime import ApiError, EventRecorder, Informer, Result
from drop_operator.runtime.logging import get_logger
from drop_operator.runtime.resources import PODS

__all__ = ["OWNER_INDEX", "POOL_INDEX", "CachedImageReconciler", "is_pull_pod", "pool_label", "pool_of"]

log = get_logger(__name__)

Obj = dict[str, Any]

OWNER_INDEX = "cachedimage.owner-uid"
"""Pods by the uid of their controlling CachedImage."""
POOL_INDEX = "cachedimage.pool"
"""Pull pods by the (label form of the) pool they were admitted under."""


def deadline_slack(pull_timeout: float) -> float:
    """Time past ``pullTimeout`` before the operator itself calls a pull timed out (1..10 s).

    The kubelet enforces ``activeDeadlineSeconds`` first when it can; the slack leaves it room to.
    """
    return min(10.0, max(1.0, 0.2 * pull_timeout))


LEDGER_TTL = 120.0
FLUSH_INTERVAL = 10.0
"""At most one cached-nodes annotation write per image per interval while pulls go on."""
POOL_RECHECK = 5.0
"""Fallback re-check of an image waiting for room in its pool (pod events normally wake it first)."""


def pool_of(obj: Obj) -> str:
    ref = ((obj.get("spec") or {}).get("pullPolicyRef") or {}).get("name")
    return str(ref) if ref else DEFAULT_POOL


def _created(pod: Obj) -> float:
    created = parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
    return created.timestamp() if created is not None else time.time()


def is_pull_pod(pod: Obj) -> bool:
    return meta(pod).labels.get(LABEL_COMPONENT) == COMPONENT


def pool_label(pod: Obj) -> str:
    """The (label form of the) pool a pull pod was admitted under."""
    return meta(pod).labels.get(LABEL_POOL, "")


class CachedImageReconciler:
    """Reconciles one CachedImage per call; shared state (pools, memory) lives on the instance."""

    def __init__(
        self,
        client: Any,
        settings: OperatorSettings,
        *,
        images: Informer,
        policies: Informer,
        nodes: Informer,
        pods: Informer,
        recorder: EventRecorder | None,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.settings = settings
        self.images = images
        self.policies = policies
        self.nodes = nodes
        self.pods = pods
        self.recorder = recorder
        self.wall = wall
        self.mono = mono
        self.rand = rand
        self.gates = PolicyGates(mono)
        self.states: dict[str, ImageState] = {}
        self.waiting: dict[str, set[str]] = {}
        self.totals = metrics.NodeTotals()
        metrics.PULLS_IN_FLIGHT.set_function(self.pulls_in_flight)

    # -- informer hooks ----------------------------------------------------------------------------

    def pulls_in_flight(self) -> float:
        return float(sum(1 for p in self.pods.list() if is_pull_pod(p) and is_active(p)))

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
        image = CachedImage.from_obj(obj)
        if image.metadata.deleting:
            self._forget(key)  # the garbage collector removes the pods with it
            return None

        pool = pool_of(obj)
        pacing, policy_problem = self._pacing(pool)
        state = self._state(key, image, pacing)
        now = self.wall()
        wakeups: list[float] = []

        all_nodes = self.nodes.list()
        targets = select_targets(all_nodes, image.spec.node_selector, image.spec.tolerations)
        state.prune({node_name(n) for n in all_nodes})

        # 1. results of finished pods (deleted in step 4, once the result is stored)
        active: dict[str, Obj] = {}
        failed_pods: list[Obj] = []
        pulled_pods: list[Obj] = []
        image_in_flight = 0
        pods = [p for p in self.pods.by_index(OWNER_INDEX, image.metadata.uid or "") if is_pull_pod(p)]
        live_uids = set()
        for pod in pods:
            meta = pod.get("metadata") or {}
            uid = str(meta.get("uid") or "")
            live_uids.add(uid)
            if meta.get("deletionTimestamp"):
                continue
            on_node = pod_node(pod)
            current = (meta.get("annotations") or {}).get(ANNOTATION_REFERENCE) == image.reference
            result = outcome(pod)
            if result.state == "pending":
                deadline = _created(pod) + pacing.pull_timeout + deadline_slack(pacing.pull_timeout)
                if now < deadline:
                    if current:
                        active[on_node] = pod
                        image_in_flight += 1
                        wakeups.append(deadline - now)
                    else:
                        await self._delete(pod)  # the reference changed: this pull is moot
                    continue
                result = Outcome(
                    "failed",
                    "Timeout",
                    f"no result within pullTimeout {format_duration(pacing.pull_timeout)}",
                )
            if current and uid not in state.recorded:
                self._record(obj, state, pod, node=on_node, result=result, pacing=pacing)
                state.recorded.add(uid)
            (pulled_pods if result.state == "pulled" else failed_pods).append(pod)
        state.recorded &= live_uids

        # 2. classify target nodes
        reported = self._reported_images(image.reference)
        candidates_fresh: list[str] = []
        candidates_retry: list[tuple[float, str]] = []
        candidates_repull: list[tuple[float, str]] = []
        cached = failed = 0
        failing_nodes: set[str] = set()
        for name, node in targets.items():
            if name in active:
                continue
            nkey = nodecache.node_key(name)
            pulled_at = state.cached.get(nkey)
            if (
                pulled_at is None
                and image.spec.image_pull_policy == "IfNotPresent"
                and reported & node_images(node)
            ):
                pulled_at = state.cached[nkey] = now
            if pulled_at is not None:
                cached += 1
                if pacing.repull_interval:
                    due = repull_due(pulled_at, pacing.repull_interval, int(nkey, 16))
                    if due <= now:
                        candidates_repull.append((pulled_at, name))
                    else:
                        wakeups.append(due - now)
                continue
            failure = state.failures.get(name)
            if failure is not None:
                failed += 1
                failing_nodes.add(name)
                if failure.retry_at <= now:
                    candidates_retry.append((failure.retry_at, name))
                else:
                    wakeups.append(failure.retry_at - now)
                continue
            candidates_fresh.append(name)
        candidates = (
            sorted(candidates_fresh, key=nodecache.node_key)
            + [n for _, n in sorted(candidates_retry)]
            + [n for _, n in sorted(candidates_repull)]
        )

        # 3. admission
        started: list[str] = []
        admission = Admission([])
        if candidates and policy_problem is None:
            admission, started = await self._admit(
                obj, image, pool=pool, pacing=pacing, candidates=candidates, image_in_flight=image_in_flight
            )
            if admission.retry_after is not None:
                wakeups.append(admission.retry_after)
            if admission.blocked_by in ("maxConcurrentPulls", "maxPullsPerNode"):
                self.waiting.setdefault(pool, set()).add(key)
                wakeups.append(POOL_RECHECK)
        for name in started:
            if name in state.failures:
                failed -= 1
                failing_nodes.discard(name)
            elif name in targets and nodecache.node_key(name) in state.cached:
                cached -= 1  # a re-pull: counted as pulling until it finishes

        pulling = sum(1 for n in active if n in targets) + len(started)
        counts = NodeCounts(target=len(targets), cached=cached, pulling=pulling, failed=failed)
        self.totals.set(
            key,
            {
                "cached": counts.cached,
                "pulling": counts.pulling,
                "failed": counts.failed,
                "pending": counts.pending,
            },
        )

        # 4. write back; a finished pod goes only once its result is stored in the object (status for
        # failures, the cached-nodes annotation for successes), so a crash in between loses nothing.
        self._transition_events(obj, image, state, counts=counts, started=started)
        await self._write_status(
            obj, image, state, counts=counts, failing_nodes=failing_nodes, policy_problem=policy_problem
        )
        for pod in failed_pods:
            await self._delete(pod)
        flush_in = await self._flush_cached_nodes(obj, image, state, pulling_now=counts.pulling > 0)
        if flush_in is not None:
            wakeups.append(flush_in)
        else:
            for pod in pulled_pods:
                await self._delete(pod)
        if not wakeups:
            return None
        return Result(requeue_after=max(0.05, min(wakeups)))

    # -- pieces --------------------------------------------------------------------------------------

    def _pacing(self, pool: str) -> tuple[Pacing, str | None]:
        if pool == DEFAULT_POOL:
            return Pacing.default(), None
        obj = self.policies.get(pool)
        if obj is None:
            return Pacing.default(), f"PullPolicy {pool!r} does not exist; no pulls start until it does"
        return Pacing.from_spec(PullPolicy.from_obj(obj).spec), None

    def _state(self, key: str, image: CachedImage, pacing: Pacing) -> ImageState:
        """Memory for the image; rebuilt from the object when new, recreated, or re-referenced.

        Failures in status are used to seed backoff only for the same object and reference (a
        fresh process); a changed reference starts from nothing, as nothing is known about it.
        """
        state = self.states.get(key)
        uid = image.metadata.uid or ""
        if state is not None and state.uid == uid and state.reference == image.reference:
            return state
        fresh_process = state is None
        recent = list(image.status.recent_failures) if fresh_process else []
        state = ImageState.load(
            uid,
            image.reference,
            image.metadata.annotations.get(nodecache.ANNOTATION),
            recent=recent,
            pacing=pacing,
            rand=self.rand,
        )
        self.states[key] = state
        return state

    def _reported_images(self, reference: str) -> set[str]:
        names = {reference}
        if reference.startswith("docker.io/library/"):
            names.add(reference.removeprefix("docker.io/library/"))
        return names

    def _record(
        self, obj: Obj, state: ImageState, pod: Obj, *, node: str, result: Outcome, pacing: Pacing
    ) -> None:
        finished = result.finished or utcnow()
        duration = max(0.0, finished.timestamp() - _created(pod))
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
            when=datetime.fromtimestamp(self.wall(), tz=UTC),
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
            retry_in=round(failure.retry_at - self.wall(), 2),
        )

    async def _admit(
        self,
        obj: Obj,
        image: CachedImage,
        *,
        pool: str,
        pacing: Pacing,
        candidates: list[str],
        image_in_flight: int,
    ) -> tuple[Admission, list[str]]:
        gate = self.gates.gate(pool)
        namespace = self.settings.namespace
        started: list[str] = []
        async with gate.lock:
            pool_pods = [p for p in self.pods.by_index(POOL_INDEX, label_value(pool)) if is_active(p)]
            unseen = gate.unseen(
                lambda name: self.pods.get(f"{namespace}/{name}") is not None, self.mono(), LEDGER_TTL
            )
            node_in_flight = Counter(pod_node(p) for p in pool_pods)
            node_in_flight.update(p.node for p in unseen)
            admission = plan_admission(
                candidates,
                pacing,
                image_in_flight=image_in_flight + sum(1 for p in unseen if p.image == image.metadata.name),
                policy_in_flight=len(pool_pods) + len(unseen),
                node_in_flight=node_in_flight,
                last_start=gate.last_start,
                now=self.mono(),
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
                    tolerations=image.spec.tolerations,
                    pull_timeout=pacing.pull_timeout,
                    operator_image=self.settings.operator_image,
                    noop_path=self.settings.noop_path,
                )
                body = build_pull_pod(request)
                name = body["metadata"]["name"]
                gate.record(PendingPull(name, image.metadata.name, node, self.mono()))
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
        return admission, started

    async def _delete(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        try:
            await self.client.delete(PODS, meta["name"], namespace=meta.get("namespace"), uid=meta.get("uid"))
        except ApiError as err:
            if err.status != 409:  # 409: precondition failed, a newer pod of that name exists
                raise

    def _transition_events(
        self, obj: Obj, image: CachedImage, state: ImageState, *, counts: NodeCounts, started: list[str]
    ) -> None:
        if started and not state.rolling_out:
            state.rolling_out = True
            self._event(
                obj,
                "Normal",
                "Pulling",
                f"pulling {image.reference} onto {counts.target - counts.cached} of {counts.target} target nodes",
                "Pull",
            )
        elif state.rolling_out and counts.cached >= counts.target:
            state.rolling_out = False
            self._event(
                obj,
                "Normal",
                "Cached",
                f"{image.reference} cached on all {counts.target} target nodes",
                "Pull",
            )
        elif state.rolling_out and not counts.pulling and not counts.pending:
            state.rolling_out = False  # only failing nodes left; their failures were reported

    async def _write_status(
        self,
        obj: Obj,
        image: CachedImage,
        state: ImageState,
        *,
        counts: NodeCounts,
        failing_nodes: set[str],
        policy_problem: str | None,
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
            policy_problem=policy_problem,
        )
        wire = status.to_json()
        stored = CachedImageStatus.model_validate(obj.get("status") or {}).to_json()
        if wire in (stored, state.written_status):
            return
        try:
            await self.client.patch_status(CACHED_IMAGES, image.metadata.name, {"status": wire})
        except ApiError as err:
            if err.not_found:
                return
            raise
        state.written_status = wire

    async def _flush_cached_nodes(
        self, obj: Obj, image: CachedImage, state: ImageState, *, pulling_now: bool
    ) -> float | None:
        """Write the cached-nodes annotation if it changed; at most every FLUSH_INTERVAL while pulling."""
        encoded = nodecache.encode(
            image.reference, state.cached, keep={nodecache.node_key(node_name(n)) for n in self.nodes.list()}
        )
        current = image.metadata.annotations.get(nodecache.ANNOTATION)
        if encoded in (current, state.written_annotation) or (current is None and not state.cached):
            return None
        wait = state.last_flush + FLUSH_INTERVAL - self.mono()
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
        state.last_flush = self.mono()
        return None

    def _event(self, obj: Obj, type_: str, reason: str, note: str, action: str) -> None:
        if self.recorder is not None:
            self.recorder.event(obj, type_, reason, note, action)

    def _forget(self, key: str) -> None:
        self.states.pop(key, None)
        self.totals.remove(key)
        for keys in self.waiting.values():
            keys.discard(key)
