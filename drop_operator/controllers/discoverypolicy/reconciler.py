"""The DiscoveryPolicy reconciler: the Kubernetes side of a sync.

A reconcile reads the policy, asks the gate (``schedule.decide_sync``) whether anything is due, and if so
reads the Secrets, runs the due sources concurrently (``sync.run_sources``), folds the outcomes into
the status (``sync.apply_outcomes``) and writes it with one merge patch on ``/status``. Then it
requeues itself for the next due time; the watch only wakes it for spec changes (the
``generation_changed`` predicate), so its own status writes never start another sync.

When it writes: after every full sync (on the interval or after a spec change: ``lastSyncTime``
and ``observedGeneration`` move), and after a retry of failing sources only if the result differs
from what is stored apart from timestamps. When nothing ran, nothing is written.

What it keeps in memory, per policy: consecutive failures and the next retry time of each failing
source (lost on restart, when retries simply start again at the floor) and a hold after a failed
status write, so a broken write never turns into a loop of backend queries. Everything else is in
the status, which is the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError

from drop_operator.api.discoverypolicy import (
    DiscoveryPolicySpec,
    DiscoveryPolicyStatus,
    DiscoverySource,
    SourceStatus,
)
from drop_operator.api.duration import parse_duration
from drop_operator.controllers.common import first_and_more
from drop_operator.controllers.discoverypolicy import metrics
from drop_operator.controllers.discoverypolicy.schedule import (
    MIN_WAIT,
    RETRY_FLOOR,
    SECRET_RETRY_FLOOR,
    SourceState,
    SyncDecision,
    decide_sync,
    jittered_interval,
    retry_delay,
)
from drop_operator.controllers.discoverypolicy.secrets import (
    SECRET_KEY_MISSING,
    SECRET_NOT_FOUND,
    read_credentials,
)
from drop_operator.controllers.discoverypolicy.status import unreadable_spec_status
from drop_operator.controllers.discoverypolicy.sync import (
    SyncOutcome,
    apply_outcomes,
    compile_filter,
    run_sources,
)
from drop_operator.controllers.kinds import DISCOVERY_POLICIES
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.discovery.errors import InvalidImageFilterError
from drop_operator.discovery.http import Credentials
from drop_operator.discovery.registry import TokenCache
from drop_operator.runtime.client import KubeClient
from drop_operator.runtime.clock import Clock, RealClock
from drop_operator.runtime.controller import Result
from drop_operator.runtime.errors import ApiError
from drop_operator.runtime.events import EventRecorder
from drop_operator.runtime.informer import Informer
from drop_operator.runtime.memory import KeyedMemory

#: Failures that happen before any request to a backend (see SECRET_RETRY_FLOOR).
SECRET_REASONS = frozenset({SECRET_NOT_FOUND, SECRET_KEY_MISSING})

__all__ = ["DiscoveryReconciler", "images_changed_note"]

log = structlog.get_logger(__name__)

Obj = dict[str, Any]

_NOTE_NAMES = 10
_WRITE_HOLD_CAP = 600.0


@dataclass
class _Memory:
    """Per-policy state that only makes sense within this process."""

    failures: dict[str, int] = field(default_factory=dict)
    retry_at: dict[str, datetime] = field(default_factory=dict)
    write_failures: int = 0
    hold_until: float = 0.0


def images_changed_note(before: list[str], after: list[str]) -> str | None:
    """``+3 -1: added a, b, c; removed d`` (long lists shortened), or None when the set is equal."""
    old, new = set(before), set(after)
    added = [i for i in after if i not in old]
    removed = [i for i in before if i not in new]
    if not added and not removed:
        return None

    parts = []
    if added:
        parts.append(f"added {first_and_more(added, _NOTE_NAMES)}")
    if removed:
        parts.append(f"removed {first_and_more(removed, _NOTE_NAMES)}")
    return f"+{len(added)} -{len(removed)}: " + "; ".join(parts)


def _comparable(status: DiscoveryPolicyStatus) -> Obj:
    """The status without the per-attempt timestamps, to tell a real change from a re-confirmation."""
    data = status.to_json()
    for source in data.get("sources", []):
        source.pop("lastSyncTime", None)
    return data


@dataclass(frozen=True)
class PolicyView:
    """One read of a DiscoveryPolicy, parsed once and passed to every step of the pass."""

    key: str
    obj: Obj
    """The object as read, for Events (they need its uid and resourceVersion)."""
    uid: str
    generation: int | None
    deleting: bool
    spec: DiscoveryPolicySpec | None
    """None when this operator cannot read the spec; ``spec_error`` says why."""
    spec_error: str | None
    status: DiscoveryPolicyStatus
    """The stored status; one this version cannot read counts as empty and is rebuilt."""
    interval: float
    """``spec.interval`` in seconds (0 without a spec)."""

    @classmethod
    def parse(cls, key: str, obj: Obj) -> PolicyView:
        meta = obj.get("metadata") or {}
        spec: DiscoveryPolicySpec | None = None
        spec_error: str | None = None
        try:
            spec = DiscoveryPolicySpec.model_validate(obj.get("spec") or {})
        except ValidationError as err:
            # The API server validated the object against the CRD; this only happens with a CRD
            # newer or older than this operator. Retrying would not help; the next edit will.
            log.error("cannot read policy spec", policy=key, error=str(err)[:500])
            spec_error = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in err.errors()[:5]
            )
        try:
            status = DiscoveryPolicyStatus.model_validate(obj.get("status") or {})
        except ValidationError as err:
            log.warning("ignoring unreadable status", policy=key, errors=err.error_count())
            status = DiscoveryPolicyStatus()
        return cls(
            key=key,
            obj=obj,
            uid=str(meta.get("uid") or ""),
            generation=meta.get("generation"),
            deleting=bool(meta.get("deletionTimestamp")),
            spec=spec,
            spec_error=spec_error,
            status=status,
            interval=parse_duration(spec.interval) if spec is not None else 0.0,
        )


class DiscoveryReconciler:
    """Reconciles DiscoveryPolicies by key (the policy's name; the kind is cluster-scoped)."""

    def __init__(
        self,
        client: KubeClient,
        settings: OperatorSettings,
        *,
        policies: Informer,
        recorder: EventRecorder,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.resource = DISCOVERY_POLICIES
        self.policies = policies
        self.recorder = recorder
        self.namespace = settings.namespace
        self.clock = clock or RealClock()
        self.token_cache = TokenCache()
        self._memory: KeyedMemory[_Memory] = KeyedMemory()

    def _utcnow(self) -> datetime:
        """Wall time from the clock, at the second precision Kubernetes stores."""
        return datetime.fromtimestamp(self.clock.wall(), UTC).replace(microsecond=0)

    # -- entry point ------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> Result | None:
        cached = self.policies.get(key)
        policy = PolicyView.parse(key, cached) if cached is not None else None
        if policy is None or policy.deleting:
            self._forget(key)
            return None
        memory = self._memory_for(policy)
        held_for = memory.hold_until - self.clock.now()
        if held_for > 0:
            return Result(requeue_after=held_for)
        decision = self._decide(policy, memory)
        if decision is None:
            await self._report_unreadable_spec(policy)
            return None
        if not decision.run:
            return Result(requeue_after=decision.wait)
        # The cache can lag behind this reconciler's own last write; decide again on the server's copy.
        try:
            obj = await self.client.get(self.resource, key)
        except ApiError as err:
            if err.not_found:
                self._forget(key)
                return None
            raise
        policy = PolicyView.parse(key, obj)
        memory = self._memory_for(policy)
        decision = self._decide(policy, memory)
        if decision is None:
            return None
        if not decision.run:
            return Result(requeue_after=decision.wait)
        return await self._sync(policy, memory, decision.run, full=decision.full, reason=decision.reason)

    # -- gate -------------------------------------------------------------------------------------

    def _memory_for(self, policy: PolicyView) -> _Memory:
        # A new object under an old name starts afresh.
        return self._memory.recall(policy.key, policy.uid, lambda _previous: _Memory())

    async def _report_unreadable_spec(self, policy: PolicyView) -> None:
        """Say so in ``Ready`` (once: nothing is written when the condition already says it)."""
        if policy.spec_error is None:
            return
        previous = policy.status
        status = unreadable_spec_status(
            previous, generation=policy.generation, error=policy.spec_error, now=self._utcnow()
        )
        if status.to_json() != previous.to_json():
            await self.client.patch_status(
                self.resource, policy.key, {"status": {"conditions": status.to_json()["conditions"]}}
            )

    def _states(
        self, sources: list[SourceStatus], memory: _Memory, interval: float
    ) -> dict[str, SourceState]:
        states: dict[str, SourceState] = {}
        for s in sources:
            if s.last_sync_time is None:
                continue
            retry_at = memory.retry_at.get(s.name)
            if retry_at is None and not s.healthy:
                retry_at = s.last_sync_time + timedelta(seconds=retry_delay(1, interval))
            states[s.name] = SourceState(healthy=s.healthy, retry_at=retry_at)
        return states

    def _decide(self, policy: PolicyView, memory: _Memory) -> SyncDecision | None:
        if policy.spec is None:
            return None
        return decide_sync(
            name=policy.key,
            now=self._utcnow(),
            generation=policy.generation,
            observed_generation=policy.status.observed_generation,
            last_sync_time=policy.status.last_sync_time,
            interval=policy.interval,
            sources=policy.spec.source_names(),
            states=self._states(policy.status.sources, memory, policy.interval),
        )

    # -- sync -------------------------------------------------------------------------------------

    async def _credentials_for(self, source: DiscoverySource) -> Credentials | None:
        if source.secret_ref is None:
            return None
        return await read_credentials(self.client, self.namespace, source.secret_ref.name)

    async def _sync(
        self, policy: PolicyView, memory: _Memory, run: tuple[str, ...], *, full: bool, reason: str
    ) -> Result | None:
        spec = policy.spec
        assert spec is not None  # _decide ran no sources without one
        key, previous, generation, interval = policy.key, policy.status, policy.generation, policy.interval
        started = self.clock.now()
        try:
            image_filter = compile_filter(spec)
            filter_error = None
        except InvalidImageFilterError as err:
            image_filter, filter_error = None, err.message
        if filter_error is not None and not full:
            # Retrying sources cannot fix the policy's own filter; the next spec edit will.
            return Result(requeue_after=self._next_wait(key, previous, memory, interval))
        outcomes = (
            {}
            if filter_error is not None
            else await run_sources(spec, self._credentials_for, only=run, token_cache=self.token_cache)
        )
        now = self._utcnow()
        outcome = apply_outcomes(
            spec=spec,
            generation=generation,
            previous=previous,
            outcomes=outcomes,
            image_filter=image_filter,
            image_filter_error=filter_error,
            full=full,
            now=now,
        )
        metrics.SYNC_DURATION.observe(self.clock.now() - started)
        self._remember_failures(memory, outcome, interval, now)
        self._count(outcome)
        self._log(key, outcome, reason=reason, run=run)

        if full or _comparable(outcome.status) != _comparable(previous):
            try:
                written = await self.client.patch_status(self.resource, key, self._status_patch(outcome))
            except ApiError as err:
                if err.not_found:
                    self._forget(key)
                    return None
                memory.write_failures += 1
                hold = min(_WRITE_HOLD_CAP, retry_delay(memory.write_failures, _WRITE_HOLD_CAP))
                memory.hold_until = self.clock.now() + hold
                log.error(
                    "cannot write policy status",
                    policy=key,
                    status=err.status,
                    reason=err.reason,
                    message=err.message,
                )
                return Result(requeue_after=hold)
            memory.write_failures = 0
            self._record_events(written, previous, outcome)
        metrics.IMAGES.labels(policy=key).set(outcome.status.image_count)
        return Result(requeue_after=self._next_wait(key, outcome.status, memory, interval))

    def _status_patch(self, outcome: SyncOutcome) -> Obj:
        body = outcome.status.to_json()
        # Merge patch keeps absent keys; a top-level value that is now unset must be cleared.
        for name in ("observedGeneration", "lastSyncTime"):
            body.setdefault(name, None)
        return {"status": body}

    def _remember_failures(
        self, memory: _Memory, outcome: SyncOutcome, interval: float, now: datetime
    ) -> None:
        for name, run in outcome.runs.items():
            if run.ok:
                memory.failures.pop(name, None)
                memory.retry_at.pop(name, None)
            else:
                memory.failures[name] = memory.failures.get(name, 0) + 1
                floor = SECRET_RETRY_FLOOR if run.reason in SECRET_REASONS else RETRY_FLOOR
                delay = retry_delay(memory.failures[name], interval, floor)
                memory.retry_at[name] = now + timedelta(seconds=delay)
        known = {s.name for s in outcome.status.sources}
        for name in [n for n in memory.failures if n not in known]:
            memory.failures.pop(name, None)
            memory.retry_at.pop(name, None)

    def _next_wait(self, key: str, status: DiscoveryPolicyStatus, memory: _Memory, interval: float) -> float:
        """Seconds until the gate has something to do; never zero, so no pass can loop."""
        now = self._utcnow()
        states = self._states(status.sources, memory, interval)
        waits = [jittered_interval(key, interval) - (now - (status.last_sync_time or now)).total_seconds()]
        waits += [
            (s.retry_at - now).total_seconds()
            for s in states.values()
            if not s.healthy and s.retry_at is not None
        ]
        wait = min(waits)
        if wait <= 0:  # due already: only possible by clock skew; never loop on it
            return min(RETRY_FLOOR, interval)
        return max(MIN_WAIT, wait)

    # -- reporting --------------------------------------------------------------------------------

    def _count(self, outcome: SyncOutcome) -> None:
        for run in outcome.runs.values():
            if not run.ok:
                metrics.SOURCE_ERRORS.labels(type=run.type, reason=run.reason or "Unknown").inc()
        if outcome.image_filter_error is not None:
            result = "invalid"
        elif outcome.all_failed:
            result = "failed"
        elif any(not s.healthy for s in outcome.status.sources):
            result = "partial"
        else:
            result = "success"
        metrics.SYNC_TOTAL.labels(result=result).inc()

    def _log(self, key: str, outcome: SyncOutcome, *, reason: str, run: tuple[str, ...]) -> None:
        failed = {n: r.reason for n, r in outcome.runs.items() if not r.ok}
        log.info(
            "discovery sync",
            policy=key,
            trigger=reason,
            sources=list(run),
            failed=failed or None,
            images=outcome.status.image_count,
            kept_previous_images=outcome.kept_previous_images,
            image_filter_error=outcome.image_filter_error,
        )
        for name, r in outcome.runs.items():
            for warning in r.warnings:
                log.warning("source warning", policy=key, source=name, warning=warning)

    def _record_events(self, obj: Obj, previous: DiscoveryPolicyStatus, outcome: SyncOutcome) -> None:
        note = images_changed_note(
            [i.image for i in previous.discovered_images], [i.image for i in outcome.status.discovered_images]
        )
        if note is not None:
            self.recorder.event(obj, "Normal", "ImagesDiscovered", note, "Discover")
        before: Mapping[str, SourceStatus] = {s.name: s for s in previous.sources}
        for status in outcome.status.sources:
            old = before.get(status.name)
            was_healthy = old is None or old.healthy or old.last_sync_time is None
            if status.last_sync_time is None:
                continue
            if not status.healthy and was_healthy:
                self.recorder.event(
                    obj,
                    "Warning",
                    "SourceFailed",
                    f"{status.name}: {status.reason}: {status.last_error or ''}",
                    "Query",
                )
            elif status.healthy and old is not None and not old.healthy and old.last_sync_time is not None:
                self.recorder.event(
                    obj, "Normal", "SourceRecovered", f"{status.name} is healthy again", "Query"
                )

    def _forget(self, key: str) -> None:
        self._memory.forget(key)
        metrics.forget_policy(key)
