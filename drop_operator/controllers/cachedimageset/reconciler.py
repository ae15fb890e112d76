"""The CachedImageSet reconciler: one pass = read caches, diff, write what differs, report.

Everything is read from the shared informers (the set, its children through the owner index, its
DiscoveryPolicy); the API server sees only writes, and only writes that change something:

* children are created with deterministic names, so a pass interrupted by a crash is repeated
  without duplicates, and a 409 on create means "look at what is there": ours with the same image
  is adopted, an orphan with the same image is taken over, anything else is reported;
* writes this process made but the informer has not shown yet are remembered for a short while
  ("expectations", as the ReplicaSet controller does), so the burst of child events that follows a
  big create does not make the next pass create, delete or patch the same things again;
* the status is written only when it differs from the stored one (or from the one this process
  wrote last, while the cache still shows the object from before that write, which it is then
  built on, so transition times are kept).

A pass that found nothing to write is remembered (:class:`_Settled`). Until anything but a child's
readiness changes (the wiring calls :meth:`ImageSetReconciler.full_pass_due` for every other
event), the next pass skips the diff, whose cost grows with the number of children, and only
recounts the ready children from an index: a child becoming Ready costs the same for a set of 10
images as for one of 10 000. Child events reach the set debounced (see
:mod:`drop_operator.controllers.common.coalesce`), so a burst of them costs one pass.

A set with a ``deletionTimestamp`` is left alone: foreground deletion waits for the garbage
collector to remove the children, and recreating them would block the delete forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from drop_operator.api.cachedimageset import CachedImageSetSpec, CachedImageSetStatus
from drop_operator.api.meta import ObjectMeta
from drop_operator.controllers.cachedimageset.desired import (
    ImageKey,
    InvalidImage,
    child_key,
    compute_desired,
)
from drop_operator.controllers.cachedimageset.discovered import DiscoveryView, discovery_view
from drop_operator.controllers.cachedimageset.plan import (
    Plan,
    child_is_ready,
    child_labels,
    owner_reference,
    plan_children,
)
from drop_operator.controllers.cachedimageset.status import build_status, parse_status
from drop_operator.controllers.common import controller_uid, first_and_more, label_value, meta, status_base
from drop_operator.controllers.kinds import CACHED_IMAGE_SETS, CACHED_IMAGES
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime.client import KubeClient
from drop_operator.runtime.clock import Clock, RealClock
from drop_operator.runtime.controller import Result
from drop_operator.runtime.errors import ApiError
from drop_operator.runtime.events import EventRecorder
from drop_operator.runtime.informer import Informer
from drop_operator.runtime.logging import get_logger
from drop_operator.runtime.memory import Expectations, KeyedMemory

__all__ = [
    "DISCOVERY_POLICY_INDEX",
    "OWNER_INDEX",
    "READY_OWNER_INDEX",
    "ImageSetReconciler",
    "owner_uids",
    "ready_owner_uids",
    "referenced_discovery_policy",
]

log = get_logger(__name__)

#: Index on CachedImages: uid of the controlling CachedImageSet.
OWNER_INDEX = "imageset.owner-uid"
#: Index on CachedImages: uid of the controlling CachedImageSet, for the children that are Ready.
READY_OWNER_INDEX = "imageset.ready-owner-uid"
#: Index on CachedImageSets: name of the referenced DiscoveryPolicy.
DISCOVERY_POLICY_INDEX = "imageset.policy"
#: How long a write this process made is trusted over a cache that does not show it yet.
EXPECTATION_TTL = 60.0
#: Child writes in flight per reconcile.
WRITE_CONCURRENCY = 10
_MAX_NAMES_IN_EVENT = 10

Obj = dict[str, Any]


def owner_uids(child: Obj) -> list[str]:
    """Index function: the uid of the child's controlling CachedImageSet, if any."""
    uid = controller_uid(child, CACHED_IMAGE_SETS.kind)
    return [uid] if uid else []


def ready_owner_uids(child: Obj) -> list[str]:
    """Index function: the uid of the child's controlling CachedImageSet, if the child is Ready."""
    return owner_uids(child) if child_is_ready(child) else []


def referenced_discovery_policy(owner: Obj) -> list[str]:
    """Index function: the DiscoveryPolicy a set references, if any."""
    ref = (owner.get("spec") or {}).get("discoveryPolicyRef") or {}
    name = ref.get("name") if isinstance(ref, Mapping) else None
    return [str(name)] if name else []


def _summary(verb: str, names: list[str]) -> str:
    noun = "CachedImage" if len(names) == 1 else "CachedImages"
    return f"{verb} {len(names)} {noun}: {first_and_more(sorted(names), _MAX_NAMES_IN_EVENT)}"


@dataclass
class _Expectations:
    """Writes made for one set that the informer may not show yet."""

    uid: str
    creates: Expectations[None]
    """By full reference of the child created."""
    deletes: Expectations[None]
    """By uid of the child deleted."""
    patches: Expectations[tuple[str, dict[str, Any]]]
    """By child uid: (resourceVersion patched, patch sent)."""
    status: tuple[str, dict[str, Any]] | None = None
    """(resourceVersion the status was written over, status written)."""
    settled: _Settled | None = None
    """The last pass, when it found nothing to write and nothing in flight."""

    @classmethod
    def new(cls, uid: str, clock: Callable[[], float]) -> _Expectations:
        return cls(
            uid,
            creates=Expectations(EXPECTATION_TTL, clock),
            deletes=Expectations(EXPECTATION_TTL, clock),
            patches=Expectations(EXPECTATION_TTL, clock),
        )


@dataclass(frozen=True)
class _Settled:
    """What a pass that found the children in line with the set built the status from.

    Valid until something other than a child's readiness changes: then a full pass is due.
    """

    generation: int | None
    desired: int
    managed: int
    invalid: tuple[InvalidImage, ...]
    discovery: DiscoveryView | None
    missing_pull_policy: str | None


@dataclass
class _Outcome:
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    patched: list[str] = field(default_factory=list)
    adopted: dict[str, Obj] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    invalid: list[InvalidImage] = field(default_factory=list)


class ImageSetReconciler:
    """Reconciles one CachedImageSet key at a time (the workqueue guarantees one worker per key)."""

    def __init__(
        self,
        client: KubeClient,
        settings: OperatorSettings,
        *,
        sets: Informer,
        children: Informer,
        policies: Informer,
        pull_policies: Informer,
        recorder: EventRecorder,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.sets = sets
        self.children = children
        self.policies = policies
        self.pull_policies = pull_policies
        self.recorder = recorder
        self.clock = clock or RealClock()
        self._expectations: KeyedMemory[_Expectations] = KeyedMemory()
        self._full_pass_due: set[str] = set()

    # -- informer hooks ----------------------------------------------------------------------------

    def full_pass_due(self, key: str) -> None:
        """Something the diff reads changed for set ``key`` (its spec, its policies, its children
        appearing, going or changing in spec, labels or owners): its next pass diffs again."""
        self._full_pass_due.add(key)

    # -- entry point -----------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        full = key in self._full_pass_due
        self._full_pass_due.discard(key)  # events from here on mark it again
        owner = self.sets.get(key)
        if owner is None:
            self._expectations.forget(key)
            return None
        owner_meta = meta(owner)
        if owner_meta.deleting:
            return None  # the garbage collector removes the children; never recreate them now
        uid = owner_meta.uid or ""
        expect = self._expectations.recall(key, uid, lambda _: _Expectations.new(uid, self.clock.now))
        settled, expect.settled = expect.settled, None
        if not full and settled is not None and settled.generation == owner_meta.generation:
            await self._recount(owner, owner_meta, expect, settled)
            return None
        try:
            spec = CachedImageSetSpec.model_validate(owner.get("spec") or {})
        except ValueError as err:
            log.warning("spec does not parse, skipping", error=str(err))
            return None

        view: DiscoveryView | None = None
        discovered: list[str] = []
        if spec.discovery_policy_ref is not None:
            name = spec.discovery_policy_ref.name
            view = discovery_view(name, self.policies.get(name))
            discovered = view.images
        desired = compute_desired(spec.images, discovered)
        if desired.invalid_discovered:
            log.info(
                "ignoring invalid discovered references",
                count=len(desired.invalid_discovered),
                first=desired.invalid_discovered[0].reference,
            )

        children, hidden = self._visible_children(expect, uid)
        plan = plan_children(
            owner,
            desired.images,
            children,
            spec.template(),
            hold_existing=view is not None and view.hold_existing,
        )
        in_line = plan.empty
        pending = self._apply_expectations(expect, plan)

        outcome = _Outcome(invalid=list(desired.invalid_static))
        await self._run(
            [partial(self._create, owner, expect, key_, body, outcome) for key_, body in plan.create]
            + [partial(self._delete, expect, child, outcome) for child in plan.delete]
            + [partial(self._patch, expect, child, patch, outcome) for child, patch in plan.patch]
        )
        self._report(owner, owner_meta.name, outcome)

        kept = {**plan.kept, **outcome.adopted}
        managed = len(kept) + len(outcome.created) + pending
        ready = sum(1 for child in kept.values() if child_is_ready(child))
        desired_count = len(plan.desired) - sum(1 for i in outcome.invalid if i not in desired.invalid_static)
        missing_pull_policy = self._missing_pull_policy(spec)
        status = build_status(
            owner,
            desired=desired_count,
            managed=managed,
            ready=ready,
            invalid=outcome.invalid,
            failures=outcome.failures,
            discovery=view,
            missing_pull_policy=missing_pull_policy,
            current=self._base_status(owner, expect),
        )
        await self._write_status(owner, owner_meta, expect, status.to_json())
        if outcome.failures:
            return Result.retry(f"{len(outcome.failures)} child writes failed: {outcome.failures[0]}")
        if in_line and not hidden:  # nothing written, nothing in flight: the diff can rest
            expect.settled = _Settled(
                owner_meta.generation,
                desired_count,
                managed,
                tuple(outcome.invalid),
                view,
                missing_pull_policy,
            )
        return None

    async def _recount(
        self, owner: Obj, owner_meta: ObjectMeta, expect: _Expectations, settled: _Settled
    ) -> None:
        """Only children's readiness changed since a settled pass: recount it from the index."""
        status = build_status(
            owner,
            desired=settled.desired,
            managed=settled.managed,
            ready=self.children.index_count(READY_OWNER_INDEX, owner_meta.uid or ""),
            invalid=settled.invalid,
            discovery=settled.discovery,
            missing_pull_policy=settled.missing_pull_policy,
            current=self._base_status(owner, expect),
        )
        await self._write_status(owner, owner_meta, expect, status.to_json())
        expect.settled = settled

    def _missing_pull_policy(self, spec: CachedImageSetSpec) -> str | None:
        """The name in ``pullPolicyRef`` when no such PullPolicy exists (children would never pull)."""
        ref = spec.pull_policy_ref
        return ref.name if ref is not None and self.pull_policies.get(ref.name) is None else None

    # -- expectations ----------------------------------------------------------------------------

    def _visible_children(self, expect: _Expectations, uid: str) -> tuple[list[Obj], int]:
        """Children from the owner index, minus the ones this process deleted moments ago (and
        how many those are)."""
        children = self.children.by_index(OWNER_INDEX, uid)
        uids = {id(c): str(meta(c).uid) for c in children}
        present = set(uids.values())
        deleting = expect.deletes.pending(seen=lambda u: u not in present)
        expect.patches.pending(seen=lambda u: u not in present)
        visible = [c for c in children if uids[id(c)] not in deleting]
        return visible, len(children) - len(visible)

    def _apply_expectations(self, expect: _Expectations, plan: Plan) -> int:
        """Drop planned writes the cache has not caught up with; return creates still in flight."""
        creating = expect.creates.pending(seen=lambda ref: ref in plan.kept or ref not in plan.desired)
        in_flight = [item for item in plan.create if item[0].reference in creating]
        plan.create = [item for item in plan.create if item[0].reference not in creating]
        remaining = []
        for child, patch in plan.patch:
            child_meta = meta(child)
            seen = expect.patches.get(str(child_meta.uid))
            if seen is not None and seen[0] == child_meta.resource_version and seen[1] == patch:
                continue
            remaining.append((child, patch))
        plan.patch = remaining
        return len(in_flight)

    # -- writes ----------------------------------------------------------------------------------

    @staticmethod
    async def _run(jobs: Sequence[Callable[[], Awaitable[None]]]) -> None:
        """Run the writes, at most :data:`WRITE_CONCURRENCY` at a time (started lazily, so a
        cancelled pass leaves no coroutine behind)."""
        if not jobs:
            return
        semaphore = asyncio.Semaphore(WRITE_CONCURRENCY)

        async def bounded(job: Callable[[], Awaitable[None]]) -> None:
            async with semaphore:
                await job()

        await asyncio.gather(*(bounded(j) for j in jobs))

    async def _create(
        self, owner: Obj, expect: _Expectations, key: ImageKey, body: Obj, outcome: _Outcome
    ) -> None:
        name = body["metadata"]["name"]
        try:
            await self.client.create(CACHED_IMAGES, body)
        except ApiError as err:
            if err.already_exists:
                await self._adopt(owner, expect, key, name, outcome)
            elif err.status == 422:
                outcome.invalid.append(
                    InvalidImage(key.reference, f"rejected by the API server: {err.message}")
                )
            else:
                outcome.failures.append(f"create {name}: {err.status} {err.reason} {err.message}"[:300])
            return
        expect.creates.expect(key.reference, None)
        outcome.created.append(name)

    async def _adopt(
        self, owner: Obj, expect: _Expectations, key: ImageKey, name: str, outcome: _Outcome
    ) -> None:
        """The name is taken: keep it if it is ours (or an orphan) for the same image, else report."""
        try:
            existing = await self.client.get(CACHED_IMAGES, name)
        except ApiError as err:
            outcome.failures.append(f"create {name}: exists, but reading it failed: {err.message}"[:300])
            return
        same_image = child_key(existing) == key
        existing_meta = meta(existing)
        controller = controller_uid(existing, CACHED_IMAGE_SETS.kind)
        if same_image and controller == expect.uid:
            log.info("adopting a child created earlier", child=name)
            expect.creates.expect(key.reference, None)
            outcome.adopted[key.reference] = existing
            return
        if same_image and controller is None and not existing_meta.deleting:
            refs = [*(r.to_json() for r in existing_meta.owner_references), owner_reference(owner)]
            try:
                adopted = await self.client.patch(
                    CACHED_IMAGES,
                    name,
                    {
                        "metadata": {
                            "ownerReferences": refs,
                            "labels": child_labels(owner),
                            "resourceVersion": existing_meta.resource_version,
                        }
                    },
                )
            except ApiError as err:
                outcome.failures.append(f"adopt {name}: {err.status} {err.reason} {err.message}"[:300])
                return
            log.info("adopted an orphaned child", child=name)
            expect.creates.expect(key.reference, None)
            outcome.adopted[key.reference] = adopted
            return
        why = "is being deleted" if existing_meta.deleting else "belongs to something else"
        outcome.failures.append(f"create {name}: the name is taken and the object {why}")

    async def _delete(self, expect: _Expectations, child: Mapping[str, Any], outcome: _Outcome) -> None:
        child_meta = meta(child)
        name, uid = child_meta.name, child_meta.uid or ""
        try:
            await self.client.delete(CACHED_IMAGES, name, uid=uid or None)
        except ApiError as err:
            if err.status == 409:  # precondition failed: that object is gone, a new one has the name
                return
            outcome.failures.append(f"delete {name}: {err.status} {err.reason} {err.message}"[:300])
            return
        expect.deletes.expect(uid, None)
        outcome.deleted.append(name)

    async def _patch(
        self, expect: _Expectations, child: Mapping[str, Any], patch: dict[str, Any], outcome: _Outcome
    ) -> None:
        child_meta = meta(child)
        name, uid = child_meta.name, child_meta.uid or ""
        try:
            await self.client.patch(CACHED_IMAGES, name, patch)
        except ApiError as err:
            if err.not_found:
                return  # deleted meanwhile; its delete event brings us back
            outcome.failures.append(f"update {name}: {err.status} {err.reason} {err.message}"[:300])
            return
        expect.patches.expect(uid, (child_meta.resource_version or "", patch))
        outcome.patched.append(name)

    @staticmethod
    def _base_status(owner: Obj, expect: _Expectations) -> CachedImageSetStatus:
        """The status a new one is built on and compared with: the stored one, or the one written
        last while the cache still shows the object from before that write."""
        return parse_status(status_base(owner, expect.status))

    async def _write_status(
        self, owner: Obj, owner_meta: ObjectMeta, expect: _Expectations, status: dict[str, Any]
    ) -> None:
        rv = owner_meta.resource_version or ""
        if status == self._base_status(owner, expect).to_json():
            return  # as stored, or as written already while the cache still shows the object before
        try:
            await self.client.patch_status(CACHED_IMAGE_SETS, owner_meta.name, {"status": status})
        except ApiError as err:
            if err.not_found:
                return
            raise
        expect.status = (rv, status)

    # -- reporting -------------------------------------------------------------------------------

    def _report(self, owner: Obj, name: str, outcome: _Outcome) -> None:
        if outcome.created:
            self.recorder.event(owner, "Normal", "Created", _summary("Created", outcome.created), "Create")
        if outcome.deleted:
            self.recorder.event(owner, "Normal", "Deleted", _summary("Deleted", outcome.deleted), "Delete")
        if outcome.patched:
            self.recorder.event(
                owner, "Normal", "Updated", _summary("Updated to the template", outcome.patched), "Update"
            )
        if outcome.failures:
            self.recorder.event(owner, "Warning", "ChildWriteFailed", outcome.failures[0], "Reconcile")
        if outcome.created or outcome.deleted or outcome.patched:
            log.info(
                "children reconciled",
                set=name,
                created=len(outcome.created),
                deleted=len(outcome.deleted),
                updated=len(outcome.patched),
                label=label_value(name),
            )
