"""What the reconciler reuses between passes: parsed images and policies, and status outcomes.

Each is reused only while what it came from holds (the object's uid and resourceVersion, every input
of the status), so a pass sees what parsing and building afresh would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from drop_operator.api import CachedImage
from drop_operator.controllers.cachedimage.pacing import Pacing
from drop_operator.controllers.cachedimage.pending import Track
from drop_operator.controllers.cachedimage.reconciler import FLUSH_INTERVAL, CachedImageReconciler
from drop_operator.controllers.cachedimage.state import ImageState
from drop_operator.controllers.cachedimage.status import NodeCounts, PlatformView
from drop_operator.controllers.settings import OperatorSettings
from drop_operator.runtime.clock import FakeClock

Obj = dict[str, Any]
REF = "registry.test/app:1"


class Store:
    """An informer's cache as the reconciler reads it: objects by key."""

    def __init__(self) -> None:
        self.objects: dict[str, Obj] = {}

    def get(self, key: str) -> Obj | None:
        return self.objects.get(key)


class Client:
    """Records status patches."""

    def __init__(self) -> None:
        self.patches: list[Obj] = []

    async def patch_status(self, res: object, name: str, patch: Obj, namespace: str | None = None) -> Obj:
        self.patches.append(patch)
        return patch


def reconciler(clock: FakeClock | None = None) -> tuple[CachedImageReconciler, Store, Store, Client]:
    images, policies, client = Store(), Store(), Client()
    rec = CachedImageReconciler(
        cast(Any, client),
        OperatorSettings(platform_lookup=False),
        images=cast(Any, images),
        policies=cast(Any, policies),
        nodes=cast(Any, Store()),
        pods=cast(Any, Store()),
        records=cast(Any, Store()),
        recorder=None,
        clock=clock or FakeClock(),
    )
    return rec, images, policies, client


def image(version: str, *, uid: str = "u1", tag: str = "1", status: Obj | None = None) -> Obj:
    obj: Obj = {
        "metadata": {"name": "app", "uid": uid, "resourceVersion": version, "generation": 1},
        "spec": {"image": "registry.test/app", "tag": tag},
    }
    if status is not None:
        obj["status"] = status
    return obj


def policy(version: str, max_pulls: int) -> Obj:
    return {
        "metadata": {"name": "p", "uid": "p1", "resourceVersion": version},
        "spec": {"maxConcurrentPulls": max_pulls},
    }


def test_an_image_is_parsed_once_per_version_and_again_when_it_changes() -> None:
    rec, _, _, _ = reconciler()
    first = rec._parse("app", image("1"))
    assert rec._parse("app", image("1")) is first
    changed = rec._parse("app", image("2", tag="2"))
    assert changed is not first
    assert changed.reference == "registry.test/app:2"
    recreated = rec._parse("app", image("2", uid="u2"))
    assert recreated is not changed
    assert recreated.metadata.uid == "u2"


def test_a_forgotten_image_is_parsed_anew() -> None:
    rec, _, _, _ = reconciler()
    first = rec._parse("app", image("1"))
    rec._forget("app")
    assert "app" not in rec.images_parsed
    assert rec._parse("app", image("1")) is not first


def test_an_image_without_a_version_is_parsed_every_time_and_not_kept() -> None:
    rec, _, _, _ = reconciler()
    obj = image("")
    assert rec._parse("app", obj) is not rec._parse("app", obj)
    assert "app" not in rec.images_parsed


def test_pacing_follows_the_policy_and_its_deletion() -> None:
    rec, _, policies, _ = reconciler()
    policies.objects["p"] = policy("1", 3)
    pacing, problem = rec._pacing("p")
    assert (pacing.max_concurrent_pulls, problem) == (3, None)
    assert rec._pacing("p")[0] is pacing
    policies.objects["p"] = policy("2", 5)
    assert rec._pacing("p")[0].max_concurrent_pulls == 5
    del policies.objects["p"]
    pacing, problem = rec._pacing("p")
    assert pacing == Pacing.default()
    assert problem is not None
    assert "p" not in rec.pacings


async def test_a_status_write_put_off_while_pulling_happens_when_its_interval_ends() -> None:
    clock = FakeClock()
    rec, _, _, client = reconciler(clock)
    obj = image("1")
    parsed = CachedImage.from_obj(obj)
    state, track = ImageState("u1", REF), Track(ImageState("u1", REF), "t", None)
    view = PlatformView()

    async def write(counts: NodeCounts, failing: set[str] | None = None) -> float | None:
        return await rec._write_status(
            obj,
            parsed,
            state,
            track,
            counts=counts,
            failing_nodes=failing or set(),
            pull_policy_problem=None,
            warming=0,
            platforms=view,
            busy=True,
        )

    assert await write(NodeCounts(target=4, cached=0, pulling=2, failed=0)) is None
    assert len(client.patches) == 1
    # Counts alone changed: put off; the same inputs again are put off until the interval ends.
    moved = NodeCounts(target=4, cached=1, pulling=2, failed=0)
    assert await write(moved) == FLUSH_INTERVAL
    assert state.status_memo is not None  # the next pass with these inputs builds nothing
    await clock.advance(4.0)
    assert await write(moved) == FLUSH_INTERVAL - 4.0
    assert len(client.patches) == 1
    await clock.advance(FLUSH_INTERVAL)
    assert await write(moved) is None
    assert [p["status"]["cachedNodes"] for p in client.patches] == [0, 1]
    # Unchanged since written: nothing to write, however often asked.
    assert await write(moved) is None
    assert await write(moved) is None
    assert len(client.patches) == 2
    # A failing node changes a condition: written at once, interval or not.
    when = datetime.fromtimestamp(clock.wall(), tz=UTC)
    state.record_failure("n1", "ErrImagePull", "", when=when, pacing=Pacing.default(), rand=0.5)
    assert await write(NodeCounts(target=4, cached=1, pulling=1, failed=1), {"n1"}) is None
    assert len(client.patches) == 3
    assert client.patches[-1]["status"]["failedNodes"] == 1


async def test_the_status_memo_is_dropped_when_pulls_end() -> None:
    rec, _, _, client = reconciler()
    obj = image("1")
    parsed = CachedImage.from_obj(obj)
    state, track = ImageState("u1", REF), Track(ImageState("u1", REF), "t", None)
    for counts in (NodeCounts(4, 0, 2, 0), NodeCounts(4, 0, 2, 0), NodeCounts(4, 4, 0, 0)):
        await rec._write_status(
            obj,
            parsed,
            state,
            track,
            counts=counts,
            failing_nodes=set(),
            pull_policy_problem=None,
            warming=0,
            platforms=PlatformView(),
            busy=counts.pulling > 0,
        )
    assert len(client.patches) == 2
    assert state.status_memo is None
