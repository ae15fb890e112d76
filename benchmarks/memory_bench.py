"""Memory benchmark: the operator's RSS idle and with N CachedImages cached, against floors.

Printed, each as min and median over ``--runs`` runs (default 2), in MiB of resident memory
(``VmRSS`` of the process, read from ``/proc``):

* **interpreter**: a bare ``python -c`` (the floor no Python process goes below);
* **import cli**: the same after ``import drop_operator.cli`` (what ``--help`` costs);
* **import run**: after importing what ``drop-operator run`` imports before it connects (the CLI,
  the runtime and every reconciler package): what the code alone costs;
* **idle**: ``drop-operator run`` (every controller, leader election on, probes and metrics on)
  against a real kube-apiserver with ``--nodes`` Node objects shaped like a kubelet's (50 images
  in ``status.images``, conditions, addresses, capacity) and no CachedImage, once its caches have
  synced and it has been quiet for a few seconds;
* **with N**: the same process after N CachedImages were created, every one reconciled
  (``status.observedGeneration``) and the process quiet again; and its peak (``VmHWM``).

Each run starts a fresh control plane (etcd + kube-apiserver; no controller manager, so nothing
else touches the objects). The images select no node (``nodeSelector``), so no pull pod is made:
what is measured is the cache and the controllers' memory, not pulls in flight.

``--detail`` adds one more run with tracemalloc on in the operator (its RSS is not counted) and
prints the top allocation sites with N cached and the deep size of each informer's cache (bytes
per cached object by kind). ``--imports`` prints what importing each dependency alone costs.
``--python PATH`` runs the operator and the floors with another interpreter: a virtualenv with
only the runtime dependencies (``python -m venv V && V/bin/pip install .``) measures what the
image ships, where a development environment also has packages that the operator's dependencies
load when present (structlog loads ``rich``). ``--go-operator PATH`` also measures another operator binary (e.g. a build of the Go
implementation of this API) the same way in each run, for a ratio measured on the same machine at
the same time.

Run: ``python benchmarks/memory_bench.py [--images 5000] [--runs 2] [--detail] [--imports]``
(needs ``task tools``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devtools.localcluster import LocalCluster  # noqa: E402
from devtools.process import free_port  # noqa: E402
from drop_operator.controllers.kinds import CACHED_IMAGES  # noqa: E402
from drop_operator.runtime import KubeClient  # noqa: E402
from drop_operator.runtime.resources import NAMESPACES, NODES  # noqa: E402
from tests.infra.imports import RUN_IMPORTS  # noqa: E402

CRD_DIR = ROOT / "manifests" / "crds"
NAMESPACE = "drop-system"
GROUP = "drop.corewire.io"
MIB = 1024 * 1024
_RSS_SNIPPET = (
    "import sys\n"
    "for m in sys.argv[1:]: __import__(m)\n"
    "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')))"
)
DEPENDENCIES = (
    "kubernetes_asyncio.client",
    "aiohttp",
    "aiohttp.web",
    "pydantic",
    "structlog",
    "prometheus_client",
    "jinja2",
    "regex",
    "yaml",
    "drop_operator.api",
    "drop_operator.runtime",
    "drop_operator.discovery",
    "drop_operator.controllers",
    "drop_operator.cli",
)


def proc_status(pid: int) -> dict[str, int]:
    """``VmRSS``, ``VmHWM``... of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Vm") or line.startswith("Rss"):
            key, _, value = line.partition(":")
            out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


PYTHON = sys.executable
"""The interpreter of the operator and of the floors (``--python``)."""


def rss_of_imports(modules: tuple[str, ...] = ()) -> float:
    """MiB resident in a fresh interpreter after importing ``modules`` (none: the bare floor)."""
    out = subprocess.run(
        [PYTHON, "-c", _RSS_SNIPPET, *modules],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return int(out.stdout.strip()) / 1024


def wait_quiet(pid: int, *, window: float = 4.0, busy: float = 0.03, within: float = 180.0) -> None:
    """Until the process used less than ``busy`` of a core over ``window`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(window)
        if (cpu_seconds(pid) - before) / window < busy:
            return
    print(f"  (process {pid} never went quiet within {within:.0f}s)", file=sys.stderr)


def wait_http(url: str, within: float, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"operator exited before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready within {within:.0f}s")


def node_body(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Node and its status, shaped like a kubelet's (sizes matter here, not the values)."""
    name = f"bench-node-{i:03d}"
    labels = {
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "m6i.xlarge",
        "topology.kubernetes.io/region": "eu-central-1",
        "topology.kubernetes.io/zone": f"eu-central-1{'abc'[i % 3]}",
        "node-role.kubernetes.io/worker": "",
    }
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                "csi.volume.kubernetes.io/nodeid": json.dumps({"ebs.csi.aws.com": f"i-0{i:016x}"}),
            },
        },
        "spec": {
            "podCIDR": f"10.244.{i}.0/24",
            "podCIDRs": [f"10.244.{i}.0/24"],
            "providerID": f"aws:///i-0{i:016x}",
        },
    }
    stamp = "2026-01-01T00:00:00Z"
    conditions = [
        {
            "type": t,
            "status": s,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
            "reason": r,
            "message": m,
        }
        for t, s, r, m in (
            (
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        )
    ]
    images = []
    for j in range(50):  # the kubelet's default nodeStatusMaxImages; the same images on most nodes
        repo = f"registry.example.com/team-{j % 7}/service-{(j + i // 10) % 60}"
        digest = f"sha256:{(j * 7919 + i // 10):064x}"
        images.append(
            {"names": [f"{repo}@{digest}", f"{repo}:v1.{j}.0"], "sizeBytes": 900_000_000 - j * 9_000_000}
        )
    status = {
        "capacity": {
            "cpu": "4",
            "ephemeral-storage": "83873772Ki",
            "hugepages-2Mi": "0",
            "memory": "16082688Ki",
            "pods": "110",
        },
        "allocatable": {
            "cpu": "3920m",
            "ephemeral-storage": "76224326324",
            "hugepages-2Mi": "0",
            "memory": "15065856Ki",
            "pods": "110",
        },
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": f"10.0.{i // 250}.{i % 250}"},
            {"type": "InternalDNS", "address": f"ip-10-0-{i // 250}-{i % 250}.eu-central-1.compute.internal"},
            {"type": "Hostname", "address": f"ip-10-0-{i // 250}-{i % 250}.eu-central-1.compute.internal"},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": f"{i:032x}",
            "systemUUID": f"ec2{i:05x}-0000-0000-0000-000000000000",
            "bootID": f"{i:08x}-1111-2222-3333-444444444444",
            "kernelVersion": "6.1.0-28-cloud-amd64",
            "osImage": "Debian GNU/Linux 12 (bookworm)",
            "containerRuntimeVersion": "containerd://1.7.24",
            "kubeletVersion": "v1.34.4",
            "kubeProxyVersion": "v1.34.4",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
        "images": images,
    }
    return node, status


def image_body(i: int) -> dict[str, Any]:
    """A CachedImage as a CachedImageSet makes its children, selecting no node."""
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "CachedImage",
        "metadata": {
            "name": f"bench-{i:05d}",
            "labels": {
                "drop.corewire.io/cachedimageset": "bench",
                "app.kubernetes.io/managed-by": "drop-operator",
            },
        },
        "spec": {
            "image": f"registry.example.com/team-{i % 7}/service-{i}",
            "tag": f"v1.{i % 20}.0",
            "rank": i,
            "nodeSelector": {"drop.example/benchmark-pool": "none"},
        },
    }


async def populate_nodes(kubeconfig: Path, count: int) -> None:
    client = await KubeClient.connect(str(kubeconfig))
    try:
        await client.create(
            NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        )
        for i in range(count):
            node, status = node_body(i)
            await client.create(NODES, node)
            await client.patch_status(NODES, node["metadata"]["name"], {"status": status})
    finally:
        await client.close()


async def create_images(kubeconfig: Path, count: int, concurrency: int = 32) -> None:
    client = await KubeClient.connect(str(kubeconfig))
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with semaphore:
            await client.create(CACHED_IMAGES, image_body(i))

    try:
        await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        await client.close()


async def reconciled(kubeconfig: Path) -> tuple[int, int]:
    client = await KubeClient.connect(str(kubeconfig))
    try:
        items, _ = await client.list(CACHED_IMAGES)
    finally:
        await client.close()
    done = sum(
        1
        for o in items
        if (o.get("status") or {}).get("observedGeneration") == (o.get("metadata") or {}).get("generation")
    )
    return done, len(items)


class Operator:
    """An operator process we start and stop by PID."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, probe_port: int) -> None:
        self.args, self.env, self.log, self.probe_port = args, env, log, probe_port
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.args,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
            )
        wait_http(
            f"http://127.0.0.1:{self.probe_port}/readyz",
            120,
            lambda: self.popen is not None and self.popen.poll() is None,
        )

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(60)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def python_operator(cluster: LocalCluster, workdir: Path, *, report: Path | None, trace: int) -> Operator:
    probe = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KUBECONFIG": str(cluster.kubeconfig)}
    if report is not None:
        env["DROP_MEMPROBE_REPORT"] = str(report)
    if trace:
        env["DROP_MEMPROBE_TRACE"] = str(trace)
    args = [
        PYTHON,
        str(ROOT / "benchmarks" / "memprobe.py"),
        "run",
        "--namespace",
        NAMESPACE,
        "--metrics-bind-address",
        f"127.0.0.1:{free_port()}",
        "--health-probe-bind-address",
        f"127.0.0.1:{probe}",
        "--no-platform-lookup",
        "--log-format",
        "json",
        "--log-level",
        "warning",
    ]
    return Operator(args, env, workdir / "operator.log", probe)


def go_operator(binary: str, cluster: LocalCluster, workdir: Path) -> Operator:
    probe = free_port()
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    args = [
        binary,
        "--metrics-bind-address=0",
        f"--health-probe-bind-address=127.0.0.1:{probe}",
        "--leader-elect=false",
        f"--pod-namespace={NAMESPACE}",
    ]
    return Operator(args, env, workdir / "go-operator.log", probe)


def measure(
    cluster: LocalCluster, operator: Operator, images: int, *, wait_reconciled: bool
) -> dict[str, float]:
    """Start ``operator``, read its RSS idle, create ``images`` CachedImages, read it again.

    The caller stops the operator (after asking it for a report, if it wants one)."""
    operator.start()
    try:
        wait_quiet(operator.pid)
        idle = proc_status(operator.pid)["VmRSS"] / 1024
        asyncio.run(create_images(cluster.kubeconfig, images))
        deadline = time.monotonic() + 900
        while wait_reconciled and time.monotonic() < deadline:
            done, total = asyncio.run(reconciled(cluster.kubeconfig))
            if done >= total:
                break
            time.sleep(2)
        wait_quiet(operator.pid)
        status = proc_status(operator.pid)
        return {"idle": idle, "loaded": status["VmRSS"] / 1024, "peak": status["VmHWM"] / 1024}
    except BaseException:
        print(
            f"operator log ({operator.log}):\n" + operator.log.read_text(errors="replace")[-3000:],
            file=sys.stderr,
        )
        raise


@contextlib.contextmanager
def fresh_cluster(workdir: Path, nodes: int) -> Iterator[LocalCluster]:
    """A control plane of its own with drop's CRDs, the operator's namespace and ``nodes`` Nodes."""
    cluster = LocalCluster(workdir / "cluster", with_controller_manager=False)
    with cluster:
        cluster.kubectl("apply", "--server-side", "-f", str(CRD_DIR))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRD_DIR))
        asyncio.run(populate_nodes(cluster.kubeconfig, nodes))
        yield cluster


def one_run(args: argparse.Namespace, *, detail: bool = False) -> dict[str, Any]:
    """One run: drop-operator (and ``--go-operator``) each on a fresh control plane of its own."""
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="drop-memory-bench-") as tmp:
        workdir = Path(tmp) / "python"
        with fresh_cluster(workdir, args.nodes) as cluster:
            report = workdir / "report.json"
            operator = python_operator(
                cluster, workdir, report=report, trace=args.trace_frames if detail else 0
            )
            try:
                result["python"] = measure(cluster, operator, args.images, wait_reconciled=True)
                if detail:
                    os.kill(operator.pid, signal.SIGUSR1)
                    for _ in range(3000):  # a snapshot of a large heap takes a while on a busy machine
                        if report.exists():
                            break
                        time.sleep(0.2)
                    result["report"] = json.loads(report.read_text())
            finally:
                operator.stop()
        if args.go_operator and not detail:
            workdir = Path(tmp) / "go"
            with fresh_cluster(workdir, args.nodes) as cluster:
                other = go_operator(args.go_operator, cluster, workdir)
                try:
                    result["go"] = measure(cluster, other, args.images, wait_reconciled=False)
                finally:
                    other.stop()
    return result


def summary(values: list[float]) -> str:
    return f"{min(values):7.1f} {statistics.median(values):7.1f}"


def print_detail(report: dict[str, Any], images: int) -> None:
    print(f"\ncache by informer, with {images} CachedImages (deep size, shared objects counted once)")
    print(f"{'informer':<40} {'objects':>8} {'KiB':>9} {'B/object':>9} {'index KiB':>10}")
    for row in report["informers"]:
        print(
            f"{row['informer']:<40} {row['objects']:>8} {row['bytes'] / 1024:>9.0f} "
            f"{row['bytes_per_object']:>9} {row['index_bytes'] / 1024:>10.0f}"
        )
    trace = report.get("tracemalloc") or {}
    if trace:
        print(
            f"\ntracemalloc with {images} CachedImages: {trace['total_bytes'] / MIB:.1f} MiB traced; top files"
        )
        for row in trace["files"][:15]:
            print(f"{row['bytes'] / MIB:8.2f} MiB {row['count']:>8}  {_short(row['where'])}")
        print("top lines")
        for row in trace["lines"][:20]:
            print(f"{row['bytes'] / MIB:8.2f} MiB {row['count']:>8}  {_short(row['where'])}")


def _short(path: str) -> str:
    for marker in ("site-packages/", "lib/python3", str(ROOT) + "/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def print_imports() -> None:
    floor = rss_of_imports()
    print(f"\nimport cost, each alone in a fresh interpreter (MiB above the bare {floor:.1f} MiB)")
    for module in DEPENDENCIES:
        started = time.perf_counter()
        rss = rss_of_imports((module,))
        print(f"{rss - floor:7.1f} MiB  {time.perf_counter() - started:5.2f} s  {module}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=5000, help="CachedImages to create")
    parser.add_argument("--nodes", type=int, default=20, help="Node objects (kubelet-shaped, 50 images each)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--detail", action="store_true", help="one more run with tracemalloc and cache sizes")
    parser.add_argument("--trace-frames", type=int, default=1, help="tracemalloc frames with --detail")
    parser.add_argument("--imports", action="store_true", help="print the import cost of each dependency")
    parser.add_argument("--go-operator", metavar="PATH", help="also measure this operator binary in each run")
    parser.add_argument(
        "--python", metavar="PATH", default=sys.executable, help="interpreter of the operator"
    )
    args = parser.parse_args()
    global PYTHON  # noqa: PLW0603  (one setting for every helper, like the module's constants)
    PYTHON = args.python

    floors, clis, run_imports, runs = [], [], [], []
    for i in range(args.runs):  # --runs 0: only --imports and --detail
        floors.append(rss_of_imports())
        clis.append(rss_of_imports(("drop_operator.cli",)))
        run_imports.append(rss_of_imports(RUN_IMPORTS))
        runs.append(one_run(args))
        print(
            f"run {i + 1}: {json.dumps({k: v for k, v in runs[-1].items() if k != 'report'})}",
            file=sys.stderr,
        )
    if not runs:
        floors = clis = run_imports = [float("nan")]
        runs = [{}]
    print(f"RSS in MiB, {args.runs} runs, {args.nodes} nodes, {args.images} CachedImages, {PYTHON}")
    print(f"{'':<32} {'min':>7} {'median':>7}")
    print(f"{'interpreter (python -c)':<32} {summary(floors)}")
    print(f"{'import drop_operator.cli':<32} {summary(clis)}")
    print(f"{'import what run imports':<32} {summary(run_imports)}")
    for who in ("python", "go"):
        if who not in runs[0]:
            continue
        name = "drop-operator run" if who == "python" else "--go-operator"
        print(f"{name + ' idle':<32} {summary([r[who]['idle'] for r in runs])}")
        print(f"{name + f' with {args.images}':<32} {summary([r[who]['loaded'] for r in runs])}")
        print(f"{name + ' peak':<32} {summary([r[who]['peak'] for r in runs])}")
    if "go" in runs[0]:
        idle = [r["python"]["idle"] / r["go"]["idle"] for r in runs]
        loaded = [r["python"]["loaded"] / r["go"]["loaded"] for r in runs]
        print(f"{'ratio python/go idle':<32} {min(idle):7.2f} {statistics.median(idle):7.2f}")
        print(f"{'ratio python/go with images':<32} {min(loaded):7.2f} {statistics.median(loaded):7.2f}")
    if args.imports:
        print_imports()
    if args.detail:
        print_detail(one_run(args, detail=True)["report"], args.images)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
