"""Plumbing shared by the benchmarks that run an operator as a process (``compare_bench.py``,
``scale_bench.py``): drop-operator (``python -m drop_operator run``) or the Go operator of the
same API (corewire/drop, a manager binary given by path), each measured the same way.

* **Requests** are counted at the API server, from its audit log: the operator authenticates as
  its own user (:data:`OPERATOR_USER`), and the audit policy records that user's requests only
  (level ``Metadata``), so the benchmark's own reads, kwok, the scheduler and the controller
  manager are not counted, and both operators are counted by the same code.
* **CPU and memory** come from ``/proc/<pid>`` of the operator process (user + system time,
  ``VmRSS`` and ``VmHWM``).
* **Pull pods** are watched by the benchmark (its own informer): creation and success times,
  and the (image, node) pair each pod pulls, so duplicates and the mean pull time are measured
  from the API server's objects, not from either operator's own metrics.

Both operators serve the same API group and kinds with different schemas (see
``docs/comparison.md``); :class:`Dialect` writes each operator's objects in its own shape, and one
control plane only ever holds one operator's CRDs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The operator process imports drop_operator from this tree too, whatever is installed.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from devtools.http import wait_http  # noqa: E402
from devtools.localcluster import LocalCluster  # noqa: E402
from devtools.process import Process, free_port  # noqa: E402
from devtools.stack import kwok_node, start_operator  # noqa: E402
from devtools.tools import tools_dir  # noqa: E402
from drop_operator.controllers.kinds import CACHED_IMAGE_SETS, CACHED_IMAGES, PULL_POLICIES  # noqa: E402
from drop_operator.runtime import Informer, KubeClient  # noqa: E402
from drop_operator.runtime.resources import NAMESPACES, NODES, PODS  # noqa: E402

OPERATOR_USER = "bench-operator"
NAMESPACE = "drop-system"
CRD_DIR = ROOT / "manifests" / "crds"
PULL_STAGES = ROOT / "tests" / "data" / "kwok" / "pull-pods.yaml"
MANAGED_BY = "app.kubernetes.io/managed-by"
#: Pull pods are labelled managed-by ``drop-operator`` (drop-operator) or ``drop`` (Go operator).
PULL_POD_SELECTOR = f"{MANAGED_BY} in (drop-operator,drop)"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})

AUDIT_POLICY = f"""apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: [{OPERATOR_USER}]
- level: None
"""


# -- the control plane ------------------------------------------------------------------------


def pull_pod_stages(workdir: Path) -> Path:
    """The kwok stages of the caching tests (``tests/data/kwok/pull-pods.yaml``), with pull pods
    recognised by their ``managed-by`` label instead of drop-operator's component label, so that
    both operators' pull pods live the same life (succeed after 0.3-1.1 s)."""
    text = PULL_STAGES.read_text()
    old_key = """'.metadata.labels["app.kubernetes.io/component"]'"""
    if text.count(old_key) != 4 or text.count("['image-pull']") != 4:
        raise RuntimeError(f"{PULL_STAGES} changed shape: update pull_pod_stages()")
    text = text.replace(old_key, f"""'.metadata.labels["{MANAGED_BY}"]'""")
    text = text.replace("['image-pull']", "['drop-operator', 'drop']")
    path = workdir / "pull-stages.yaml"
    path.write_text(text)
    return path


def new_cluster(
    workdir: Path,
    *,
    controller_manager: bool,
    extra_args: Mapping[str, Sequence[str]] | None = None,
) -> LocalCluster:
    """A local control plane whose API server audits :data:`OPERATOR_USER` (not yet started)."""
    workdir.mkdir(parents=True, exist_ok=True)
    policy = workdir / "audit-policy.yaml"
    policy.write_text(AUDIT_POLICY)
    args = {key: list(value) for key, value in (extra_args or {}).items()}
    args.setdefault("kube-apiserver", []).extend(
        [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={workdir / 'audit.log'}",
            "--audit-log-maxsize=0",
            "--audit-log-mode=blocking",
        ]
    )
    return LocalCluster(
        workdir, with_controller_manager=controller_manager, users=(OPERATOR_USER,), extra_args=args
    )


def apply_crds(cluster: LocalCluster, crds: Path) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(crds))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds))


async def gather_limited(coros: Iterable[Any], limit: int = 32) -> list[Any]:
    """Await ``coros`` with at most ``limit`` in flight (batched, concurrent object creation)."""
    semaphore = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with semaphore:
            return await coro

    return list(await asyncio.gather(*(one(c) for c in coros)))


async def create_namespace(client: KubeClient) -> None:
    await client.create(
        NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    )


async def create_kwok_nodes(client: KubeClient, count: int, *, within: float = 600.0) -> list[str]:
    """``count`` kwok Nodes created directly (concurrently); return once all are schedulable
    (Ready, and the node lifecycle controller has removed the not-ready taint)."""
    names = [f"node-{i:05d}" for i in range(count)]
    await gather_limited(client.create(NODES, kwok_node(n)) for n in names)
    deadline = time.monotonic() + within
    while True:
        items, _ = await client.list(NODES)
        ready = sum(1 for n in items if not (n.get("spec") or {}).get("taints") and _ready(n))
        if ready >= count:
            return names
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {ready} of {count} nodes became schedulable")
        await asyncio.sleep(1.0)


def _ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


# -- the two operators' dialects of the API -----------------------------------------------------


@dataclass(frozen=True)
class Pacing:
    """The pacing a benchmark asks for, in the terms both operators have."""

    max_concurrent_nodes: int
    max_concurrent_pulls: int
    max_pulls_per_node: int
    """drop-operator only: the Go operator has no per-node limit."""

    def concurrency(self, nodes: int, images: int) -> int:
        """Pulls that can be in flight at once under these limits."""
        return min(
            self.max_concurrent_pulls, nodes * self.max_pulls_per_node, images * self.max_concurrent_nodes
        )


@dataclass(frozen=True)
class Dialect:
    """How one operator spells the objects a benchmark writes and reads (``docs/comparison.md``)."""

    name: str
    crds: Path
    go: bool
    """The Go operator's shapes (corewire/drop), else drop-operator's."""

    def pull_policy(self, name: str, pacing: Pacing) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "maxConcurrentNodes": pacing.max_concurrent_nodes,
            "maxConcurrentPulls": pacing.max_concurrent_pulls,
        }
        if self.go:
            # 0 means "the 10s default" there; a millisecond is the closest to no gap.
            spec["minDelayBetweenPulls"] = "1ms"
        else:
            spec |= {
                "maxPullsPerNode": pacing.max_pulls_per_node,
                "minDelayBetweenPulls": "0s",
                "pullTimeout": "2m",
            }
        return {
            "apiVersion": PULL_POLICIES.api_version,
            "kind": "PullPolicy",
            "metadata": {"name": name},
            "spec": spec,
        }

    def cached_image(self, name: str, image: str, tag: str, policy: str | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {"image": image, "tag": tag}
        if policy:
            spec["policyRef" if self.go else "pullPolicyRef"] = {"name": policy}
        return {
            "apiVersion": CACHED_IMAGES.api_version,
            "kind": "CachedImage",
            "metadata": {"name": name},
            "spec": spec,
        }

    def image_set(self, name: str, references: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """A set of static images, given as (repository, tag) pairs."""
        images: list[Any] = (
            [{"image": i, "tag": t} for i, t in references]
            if self.go
            else [f"{i}:{t}" for i, t in references]
        )
        return {
            "apiVersion": CACHED_IMAGE_SETS.api_version,
            "kind": "CachedImageSet",
            "metadata": {"name": name},
            "spec": {"images": images},
        }

    def set_label(self) -> str:
        """The label a set puts on its children (value: the set's name)."""
        return "drop.corewire.io/imageset" if self.go else "drop.corewire.io/cachedimageset"

    def cached_nodes(self, obj: Mapping[str, Any]) -> int:
        status = obj.get("status") or {}
        return int(status.get("nodesReady" if self.go else "cachedNodes") or 0)

    def set_managed(self, obj: Mapping[str, Any]) -> int:
        status = obj.get("status") or {}
        return int(status.get("imagesManaged" if self.go else "managed") or 0)


def observed(obj: Mapping[str, Any]) -> bool:
    """The operator has written a status for the object's current generation."""
    status = obj.get("status") or {}
    return status.get("observedGeneration") == (obj.get("metadata") or {}).get("generation")


# -- the operator process ------------------------------------------------------------------------


@dataclass
class OperatorUnderTest:
    """One operator to run: drop-operator from this tree, or a Go manager binary."""

    dialect: Dialect
    binary: Path | None = None
    python: str | None = None
    """drop-operator's interpreter (``None``: this one's)."""

    @classmethod
    def ours(cls, python: str | None = None) -> OperatorUnderTest:
        """drop-operator from this tree, run by ``python`` (default: this interpreter)."""
        return cls(Dialect("drop-operator", CRD_DIR, go=False), python=python)

    @classmethod
    def go(cls, binary: Path, crds: Path | None = None) -> OperatorUnderTest:
        """The Go operator: ``binary`` with its CRDs in ``crds`` (default: ``crds/`` beside it, as
        ``hack/build-go-operator.sh`` leaves them)."""
        crds = crds or binary.parent / "crds"
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"{binary} is not an executable (build it with hack/build-go-operator.sh)")
        if not crds.is_dir():
            raise SystemExit(f"{crds} is missing: the Go operator's CRDs (config/crd/bases of its source)")
        return cls(Dialect("Go operator", crds, go=True), binary)

    @property
    def name(self) -> str:
        return self.dialect.name

    def start(self, cluster: LocalCluster, log: Path) -> RunningOperator:
        """Start it with its shipped defaults (chart arguments), leader election off (the Go
        manager cannot find a Lease namespace outside a pod), as :data:`OPERATOR_USER`; return
        once its readiness probe answers."""
        kubeconfig = cluster.user_kubeconfig(OPERATOR_USER)
        started = time.monotonic()
        if self.binary is None:
            op = start_operator(
                kubeconfig,
                log,
                namespace=NAMESPACE,
                leader_elect=False,
                log_format="json",
                # The images are named on hosts that exist nowhere.
                extra_args=["--no-platform-lookup"],
                python=self.python,
            )
            cluster.processes["operator"] = op.process  # stopped with the cluster on any exit
            return RunningOperator(op.process, started)
        probe = free_port()
        proc = Process(
            "go-operator",
            [
                str(self.binary),
                f"--kubeconfig={kubeconfig}",
                "--metrics-bind-address=0",
                f"--health-probe-bind-address=127.0.0.1:{probe}",
                f"--pod-namespace={NAMESPACE}",
            ],
            log,
        )
        proc.start()
        cluster.processes["operator"] = proc
        wait_http(f"http://127.0.0.1:{probe}/readyz", timeout=60, alive=proc.alive)
        return RunningOperator(proc, started)


@dataclass
class RunningOperator:
    process: Process
    started: float
    """``time.monotonic()`` just before the process was started."""

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_mib(self) -> float:
        return proc_status_mib(self.pid, "VmRSS")

    def peak_rss_mib(self) -> float:
        return proc_status_mib(self.pid, "VmHWM")

    def stop(self) -> None:
        if not self.process.alive():
            raise RuntimeError(f"the operator died during the benchmark:\n{self.process.log_tail(40)}")
        self.process.stop(timeout=40)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def proc_status_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def floor_rss_mib(args: Sequence[str], settle: float = 1.5) -> float:
    """RSS of a process that does nothing: the interpreter or runtime's own floor."""
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(settle)
        return proc_status_mib(proc.pid, "VmRSS")
    finally:
        proc.kill()
        proc.wait()


def go_idle_binary() -> Path | None:
    """A Go program that only waits for a signal (built once with the installed Go, cached)."""
    target = tools_dir() / "go-idle" / "idle"
    if target.exists():
        return target
    source = target.parent / "src"
    source.mkdir(parents=True, exist_ok=True)
    (source / "go.mod").write_text("module idle\n\ngo 1.22\n")
    (source / "main.go").write_text(
        'package main\n\nimport (\n\t"os"\n\t"os/signal"\n\t"syscall"\n)\n\n'
        "func main() {\n\tc := make(chan os.Signal, 1)\n"
        "\tsignal.Notify(c, os.Interrupt, syscall.SIGTERM)\n\t<-c\n}\n"
    )
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    result = subprocess.run(
        ["go", "build", "-o", str(target), "."], cwd=source, env=env, capture_output=True, check=False
    )
    return target if result.returncode == 0 else None


# -- counting requests at the API server --------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request of the operator's user, from the API server's audit log."""

    at: float
    """Unix time the API server received it."""
    verb: str
    resource: str
    """``resource`` or ``resource/subresource``."""

    @property
    def write(self) -> bool:
        return self.verb in WRITE_VERBS


@dataclass
class AuditLog:
    """The operator's requests, read incrementally from the API server's audit log.

    Each request is counted once: long-running ones (watches) when the response started, the
    others when it completed.
    """

    path: Path
    requests: list[Request] = field(default_factory=list)
    _offset: int = 0

    def read(self) -> list[Request]:
        if not self.path.exists():
            return self.requests
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].splitlines():
            event = json.loads(line)
            stage, verb = event.get("stage"), event.get("verb", "")
            if (stage == "ResponseStarted") != (verb == "watch") or stage not in {
                "ResponseStarted",
                "ResponseComplete",
                "Panic",
            }:
                continue
            ref = event.get("objectRef") or {}
            resource = ref.get("resource") or event.get("requestURI", "?").split("?")[0]
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            at = dt.datetime.fromisoformat(
                event["requestReceivedTimestamp"].replace("Z", "+00:00")
            ).timestamp()
            self.requests.append(Request(at, verb, resource))
        return self.requests

    def between(self, start: float, end: float = float("inf")) -> list[Request]:
        return [r for r in self.read() if start <= r.at <= end]

    async def quiet(
        self, since: float, *, writes_only: bool = True, for_seconds: float = 3.0, within: float = 120
    ) -> float:
        """Wait until the operator has sent no (write) request for ``for_seconds``; return the
        unix time of its last one after ``since`` (``since`` itself if there was none)."""
        deadline = time.monotonic() + within
        while True:
            sent = [r.at for r in self.between(since) if r.write or not writes_only]
            last = max(sent, default=since)
            if time.time() - last >= for_seconds or time.monotonic() > deadline:
                return last
            await asyncio.sleep(0.5)


def peak_rate(requests: Sequence[Request], window: float = 1.0) -> float:
    """Most requests received in one ``window``-second bucket, per second."""
    buckets = Counter(int(r.at // window) for r in requests)
    return max(buckets.values(), default=0) / window


def breakdown(requests: Sequence[Request]) -> str:
    """``verb resource: count`` of the requests, most frequent first."""
    counts = Counter(f"{r.verb} {r.resource}" for r in requests)
    return ", ".join(f"{k}: {v}" for k, v in counts.most_common())


# -- pull pods as the API server holds them -----------------------------------------------------


def pod_target(pod: Mapping[str, Any]) -> tuple[str, str]:
    """(image, node) a pull pod pulls: its main container's image, and its node (``nodeName``,
    or the node its required affinity pins it to before the scheduler binds it)."""
    spec = pod.get("spec") or {}
    image = (spec.get("containers") or [{}])[0].get("image", "")
    node = spec.get("nodeName") or ""
    if not node:
        affinity = (
            ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
                "requiredDuringSchedulingIgnoredDuringExecution"
            )
            or {}
        ).get("nodeSelectorTerms") or []
        for term in affinity:
            for req in term.get("matchFields") or []:
                if req.get("key") == "metadata.name" and req.get("values"):
                    node = req["values"][0]
    return image, node


@dataclass
class PullLog:
    """Every pull pod the benchmark saw: when it appeared and when it succeeded (its own clock)."""

    created: dict[str, float] = field(default_factory=dict)
    succeeded: dict[str, float] = field(default_factory=dict)
    target: dict[str, tuple[str, str]] = field(default_factory=dict)

    def watch(self, client: KubeClient) -> Informer:
        informer = Informer(client, PODS, namespace=NAMESPACE, label_selector=PULL_POD_SELECTOR)

        def seen(pod: Mapping[str, Any]) -> None:
            uid = pod["metadata"]["uid"]
            now = time.time()
            self.created.setdefault(uid, now)
            image, node = pod_target(pod)
            if node:
                self.target[uid] = (image, node)
            if (pod.get("status") or {}).get("phase") == "Succeeded":
                self.succeeded.setdefault(uid, now)

        informer.add_handler(on_add=seen, on_update=lambda _old, new: seen(new), on_delete=seen)
        informer.start()
        return informer

    def pods_per_pair(self) -> dict[tuple[str, str], int]:
        pairs: dict[tuple[str, str], int] = defaultdict(int)
        for target in self.target.values():
            pairs[target] += 1
        return pairs

    def duplicates(self) -> int:
        """Pods beyond the first per (image, node) pair (no pull fails in these benchmarks, so
        every one of them is a duplicate)."""
        return sum(n - 1 for n in self.pods_per_pair().values())

    def pulled_pairs(self) -> int:
        return len({self.target[uid] for uid in self.succeeded if uid in self.target})

    def mean_pull_seconds(self) -> float:
        durations = [self.succeeded[u] - self.created[u] for u in self.succeeded if u in self.created]
        return statistics.fmean(durations) if durations else float("nan")


@dataclass(frozen=True)
class Rollout:
    """One rollout: from the CachedImages' creation until each reports every node cached."""

    start: float
    done: float
    """Unix times."""
    cpu: float
    """Operator CPU seconds in between."""
    requests: list[Request]
    """The operator's requests in between."""


async def roll_out(
    client: KubeClient,
    op: OperatorUnderTest,
    running: RunningOperator,
    audit: AuditLog,
    *,
    images: int,
    nodes: int,
    policy: str,
    within: float,
) -> Rollout:
    """Create ``images`` CachedImages (``registry.test/<policy>/app<i>:ok``) under PullPolicy
    ``policy`` and wait until every one reports ``nodes`` nodes cached."""
    watch = Informer(client, CACHED_IMAGES)
    watch.start()
    try:
        await watch.wait_synced(60)
        await asyncio.sleep(2.0)  # let the operator's start-up requests settle out of the window
        start, cpu0 = time.time(), running.cpu_seconds()
        await gather_limited(
            client.create(
                CACHED_IMAGES,
                op.dialect.cached_image(f"{policy}-{i:04d}", f"registry.test/{policy}/app{i}", "ok", policy),
            )
            for i in range(images)
        )

        def complete() -> bool:
            items = watch.list()
            return len(items) >= images and all(op.dialect.cached_nodes(o) >= nodes for o in items)

        done = await wait_for(complete, within, "every image cached on every node")
        return Rollout(start, done, running.cpu_seconds() - cpu0, audit.between(start, done))
    finally:
        await watch.stop()


async def wait_for(check: Callable[[], bool], within: float, what: str, interval: float = 0.2) -> float:
    """Poll ``check`` until true; return ``time.time()`` then."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(interval)
    return time.time()


def load_average() -> float:
    return os.getloadavg()[0]


# -- reporting ------------------------------------------------------------------------------------


def min_median(values: Sequence[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def fmt(value: float, digits: int = 2) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.{digits}f}"
