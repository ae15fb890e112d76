"""Manager against the real API server: leader election, readiness, graceful stop, SIGTERM, Events."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devtools.localcluster import LocalCluster
from drop_operator.runtime import ApiError, KubeClient, Manager, Resource, Result
from drop_operator.runtime.resources import (
    CONFIG_MAPS,
    CUSTOM_RESOURCE_DEFINITIONS,
    EVENTS,
    LEASES,
    NAMESPACES,
)
from tests.infra.controlplane import unique_name
from tests.infra.waiting import eventually
from tests.integration.runtime.crd import ensure_test_crd

FAST_LEASE = {"lease_duration": 4.0, "renew_deadline": 3.0, "retry_period": 0.5}


def make_manager(kube: KubeClient, namespace: str, lease: str, ident: str, **kw: Any) -> Manager:
    return Manager(
        kube,
        namespace=namespace,
        lease_name=lease,
        identity=ident,
        metrics_addr="0",
        probe_addr="127.0.0.1:0",
        **{**FAST_LEASE, **kw},
    )


@contextlib.asynccontextmanager
async def running(manager: Manager) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(manager.run())
    try:
        yield task
    finally:
        manager.stop()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(task, 20)


async def probe(manager: Manager, path: str) -> int:
    port = manager.health.ports["probe"]
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as resp:
        return resp.status


async def holder(kube: KubeClient, namespace: str, lease: str) -> str:
    try:
        obj = await kube.get(LEASES, lease, namespace)
    except ApiError as exc:
        if exc.not_found:
            return ""
        raise
    return str((obj.get("spec") or {}).get("holderIdentity") or "")


@pytest.mark.slow
async def test_one_leader_killed_leader_expires_graceful_stop_hands_over_at_once(
    kube: KubeClient, namespace: str
) -> None:
    lease = unique_name("lease")
    first, second = make_manager(kube, namespace, lease, "a"), make_manager(kube, namespace, lease, "b")
    loop = asyncio.get_running_loop()
    async with running(first) as t1, running(second):
        await eventually(lambda: first.is_leader or second.is_leader, 15, "someone leads")
        await asyncio.sleep(1.5)  # several retry periods: the other must stay standby
        assert first.is_leader != second.is_leader
        leader, standby = (first, second) if first.is_leader else (second, first)
        assert await holder(kube, namespace, lease) == leader.elector.identity  # type: ignore[union-attr]
        assert await probe(standby, "/readyz") == 200, "a synced standby is ready"
        assert not standby.started_controllers

        # Crash the leader: no release, the Lease must expire first.
        assert leader.elector is not None
        leader.elector._leader = False  # release() becomes a no-op, as in a crash
        crash_task = t1 if leader is first else None
        killed_at = loop.time()
        if crash_task is not None:
            crash_task.cancel()
        else:
            leader.stop()
        await eventually(lambda: standby.is_leader, 15, "standby takes over an expired lease")
        handover = loop.time() - killed_at
        assert FAST_LEASE["lease_duration"] - FAST_LEASE["retry_period"] - 0.5 <= handover
        assert handover <= FAST_LEASE["lease_duration"] + 2 * FAST_LEASE["retry_period"] + 1.5

        third = make_manager(kube, namespace, lease, "c")
        async with running(third):
            await eventually(lambda: third.health.ports.get("probe"), 10, "third manager serving")
            await asyncio.sleep(1.0)
            assert not third.is_leader
            stopped_at = loop.time()
            standby.stop()
            await eventually(lambda: third.is_leader, 10, "graceful stop hands over")
            assert loop.time() - stopped_at < FAST_LEASE["lease_duration"] * 0.75, "released, not expired"


async def test_readyz_waits_for_cache_sync(kube: KubeClient, namespace: str) -> None:
    # The informer's resource does not exist yet, so its LIST fails until the CRD is created.
    res = Resource(f"{unique_name('ready')}.example.com", "v1", "Gadget", "gadgets", namespaced=False)
    manager = make_manager(kube, namespace, unique_name("lease"), "ready", leader_election=False)
    manager.informer(res)
    async with running(manager):
        await eventually(lambda: manager.health.ports.get("probe"), 10, "probe server up")
        await eventually(lambda: manager.informers[0].backoff.attempts >= 1, 10, "LIST failed at least once")
        assert await probe(manager, "/readyz") == 503
        assert await probe(manager, "/healthz") == 200, "retrying a LIST is not a liveness failure"
        assert not manager.started_controllers
        await ensure_test_crd(kube, res)

        async def ready() -> bool:
            return await probe(manager, "/readyz") == 200

        await eventually(ready, 30, "ready once the cache synced")
        await eventually(lambda: manager.started_controllers, 5, "controllers started after sync")
    await kube.delete(CUSTOM_RESOURCE_DEFINITIONS, f"{res.plural}.{res.group}")


async def test_stop_finishes_in_flight_reconcile_and_releases_the_lease(
    kube: KubeClient, namespace: str
) -> None:
    lease = unique_name("lease")
    manager = make_manager(kube, namespace, lease, "stopper", grace_period=10)
    started, finished = asyncio.Event(), asyncio.Event()

    async def reconcile(key: str) -> Result | None:
        started.set()
        await asyncio.sleep(1.0)
        finished.set()
        return None

    informer = manager.informer(CONFIG_MAPS, namespace=namespace)
    manager.controller("slow", reconcile, workers=1).watch_for(informer)
    task = asyncio.create_task(manager.run())
    try:
        await eventually(lambda: manager.is_leader and manager.started_controllers, 15, "leading")
        await kube.create(
            CONFIG_MAPS,
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": namespace}},
        )
        await asyncio.wait_for(started.wait(), 10)
        manager.stop()
        await asyncio.wait_for(task, 15)
    finally:
        manager.stop()
    assert finished.is_set(), "run() returned before the in-flight reconcile finished"
    assert await holder(kube, namespace, lease) == ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
async def test_drop_operator_run_exits_zero_on_sigterm(
    control_plane: LocalCluster, crds: Path, kube: KubeClient
) -> None:
    namespace = unique_name("rt-cli")
    await kube.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "drop_operator",
        "run",
        f"--kubeconfig={control_plane.kubeconfig}",
        f"--namespace={namespace}",
        "--lease-name=cli",
        "--metrics-bind-address=0",
        f"--health-probe-bind-address=127.0.0.1:{port}",
        "--log-format=json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:

        async def leading() -> bool:
            return await holder(kube, namespace, "cli") != ""

        try:
            await eventually(leading, 30, "operator acquired its lease")
        except AssertionError:
            proc.kill()
            output, _ = await proc.communicate()
            raise AssertionError(output.decode()[-3000:]) from None
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, output.decode()
        assert b'"signal received, shutting down"' in output
        assert await holder(kube, namespace, "cli") == "", "the lease is released on the way out"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await kube.delete(NAMESPACES, namespace)


async def test_events_are_recorded_and_deduplicated_into_a_series(kube: KubeClient, namespace: str) -> None:
    manager = make_manager(kube, namespace, "unused", "events", leader_election=False)
    recorder = manager.event_recorder("drop.corewire.io/runtime-test")
    target = await kube.create(
        CONFIG_MAPS,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ev", "namespace": namespace}},
    )
    for _ in range(3):
        recorder.event(target, "Normal", "Synced", "all good", "Reconcile")
    recorder.event(target, "Warning", "Failed", "other note", "Reconcile")
    ns_obj = await kube.get(NAMESPACES, namespace)
    recorder.event(ns_obj, "Normal", "Seen", f"cluster-scoped {namespace}", "Observe")
    await recorder.flush()

    items, _ = await kube.list(EVENTS, namespace=namespace)
    mine = {e["reason"]: e for e in items if e["regarding"].get("name") == "ev"}
    assert set(mine) == {"Synced", "Failed"}
    assert mine["Synced"]["series"]["count"] == 3
    assert "series" not in mine["Failed"]
    assert mine["Synced"]["regarding"]["uid"] == target["metadata"]["uid"]

    cluster_items, _ = await kube.list(EVENTS, namespace="default")
    about_ns = [e for e in cluster_items if e.get("note") == f"cluster-scoped {namespace}"]
    assert len(about_ns) == 1
    assert about_ns[0]["regarding"]["kind"] == "Namespace"
    await recorder.close()


@pytest.mark.slow
async def test_a_frozen_leader_that_resumes_writes_nothing_and_exits(
    control_plane: LocalCluster, kube: KubeClient, namespace: str
) -> None:
    """A leader frozen past its Lease (SIGSTOP) while a standby takes over
    writes nothing once it resumes (not even the rest of the pass in flight) and exits 1, as
    controller-runtime's manager does; SIGTERM keeps its graceful drain (tests above)."""
    lease = unique_name("frozen")
    for name in ("tick", "writes"):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}}
        await kube.create(CONFIG_MAPS, body)

    async def written() -> dict[str, str]:
        data: dict[str, str] = (await kube.get(CONFIG_MAPS, "writes", namespace)).get("data") or {}
        return data

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.runtime.frozen_leader",
        str(control_plane.kubeconfig),
        namespace,
        lease,
        "frozen",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    standby = make_manager(kube, namespace, lease, "standby")
    try:

        async def writing() -> bool:
            return int((await written()).get("frozen", "0")) >= 10

        await eventually(writing, 30, "the first leader writes")
        proc.send_signal(signal.SIGSTOP)
        async with running(standby):
            await eventually(lambda: standby.is_leader, 20, "the standby takes the expired Lease")
            before = (await written()).get("frozen")
            proc.send_signal(signal.SIGCONT)
            output, _ = await asyncio.wait_for(proc.communicate(), 30)
            assert proc.returncode == 1, output.decode()[-3000:]
            assert b"leadership lost" in output
            assert (await written()).get("frozen") == before, (
                "the resumed leader wrote after losing its Lease"
            )
            assert standby.is_leader
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            await proc.wait()
