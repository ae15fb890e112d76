"""``task demo``: the whole product on this machine, left running for a person to explore.

``python -m devtools.demo up|down|status``. ``up`` starts, detached, with state in ``.local/demo``:

* the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)
  with 4 simulated nodes and one real node (``real-node-0``: containerd + kubelet) that really
  pulls every image, from local registries only;
* Prometheus with a few hours of cAdvisor-like sample data for ~40 build images (namespace
  ``build-stuff``, cluster ``mycluster``; some from ECR, which the documented filter drops), behind
  the documented Secret's basic-auth credentials;
* a token-auth registry with GitLab-runner-helper-like tags;
* the Helm chart, and the operator as a background process holding only the chart's
  ServiceAccount token (the Deployment is scaled to 0; pull pods take drop-noop from the helper
  image the real node pulls from the cluster's node registry);
* ``examples/`` applied, with only the source endpoints pointed at the local servers.

It returns once images are discovered and prints what to look at. ``down`` stops every process it
started, by PID. Everything is the same code the e2e suite runs (:mod:`devtools.stack`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from devtools import examples, sampledata
from devtools.localcluster import LocalCluster, kubectl_binary
from devtools.process import Process, wait_until
from devtools.prometheus import start_prometheus
from devtools.registry import RegistryServer, start_registry
from devtools.stack import (
    KWOK_STAGES,
    NAMESPACE,
    create_kwok_nodes,
    install_chart,
    serve_images,
    service_account_kubeconfig,
    start_operator,
)
from devtools.tools import REPO_ROOT, ToolMissingError, go_tool, system_tool
from drop_operator.imageref import parse

DEMO_DIR = REPO_ROOT / ".local" / "demo"
NODES = ("kwok-node-a", "kwok-node-b", "kwok-node-c", "kwok-node-d")
REAL_NODE = "real-node-0"
SEED_CREDENTIALS = ("admin", "my-prometheus-password")  # the documented prometheus-creds Secret
DATA_HOURS = 8


class Console:
    """Step-by-step progress: what is starting and how long it took."""

    def __init__(self) -> None:
        self.tty = sys.stdout.isatty()
        self.started = time.monotonic()

    def bold(self, text: str) -> str:
        return f"\033[1m{text}\033[0m" if self.tty else text

    def dim(self, text: str) -> str:
        return f"\033[2m{text}\033[0m" if self.tty else text

    def step(self, what: str, fn: Callable[[], Any]) -> Any:
        print(f"  {what} ...", end="", flush=True)
        t0 = time.monotonic()
        result = fn()
        print(f" {time.monotonic() - t0:.1f}s", flush=True)
        return result

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def _check_tools() -> None:
    """Fail early, with the command that fixes it, if `task tools` has not run."""
    for tool, binary in (
        ("kubernetes", "kube-apiserver"),
        ("kubernetes", "kubelet"),
        ("etcd", None),
        ("kwok", None),
        ("helm", None),
    ):
        go_tool(tool, binary)
    system_tool("prometheus", "prometheus")
    system_tool("docker-registry", "docker-registry")
    system_tool("containerd", "containerd")


def _state_path(workdir: Path) -> Path:
    return workdir / "demo.json"


def _load_processes(workdir: Path) -> list[Process]:
    path = _state_path(workdir)
    if not path.exists():
        return []
    state = json.loads(path.read_text())
    return [Process(name, [], Path(log), pid=pid) for name, pid, log in state["processes"]]


def _running(workdir: Path) -> bool:
    cluster = LocalCluster.load_state(workdir / "cluster")
    procs = _load_processes(workdir)
    return bool(procs) and cluster is not None and all(p.alive() for p in procs)


def up(workdir: Path) -> int:
    out = Console()
    kubeconfig = workdir / "cluster" / "kubeconfig"
    if _running(workdir):
        print(out.bold("The demo is already running."))
        _show(workdir, kubeconfig, out)
        return 0
    try:
        _check_tools()
    except ToolMissingError as err:
        print(f"{err}\n(`task demo` runs `task tools` first.)", file=sys.stderr)
        return 2
    down(workdir, quiet=True)
    if workdir.exists():
        shutil.rmtree(workdir)  # a stopped demo's data; a fresh start is simpler than a resume
    workdir.mkdir(parents=True)

    print(out.bold("Starting the drop-operator demo") + out.dim(f"  (state and logs in {_rel(workdir)})"))
    cluster = LocalCluster(workdir / "cluster")
    procs: list[Process] = []
    try:
        with ThreadPoolExecutor(1) as pool:
            servers = pool.submit(_start_sources, workdir, procs)
            out.step(
                "local control plane: etcd, kube-apiserver, controller-manager, scheduler", cluster.start
            )
            out.step("kwok with 4 simulated nodes", lambda: _nodes(cluster))
            out.step(
                f"1 real node ({REAL_NODE}): containerd + kubelet, its own registry",
                lambda: cluster.start_real_nodes(1),
            )
            cluster.save_state()
            out.step("helm install charts/drop-operator into drop-system", lambda: _install(cluster))
            prometheus_url, registry = out.step(
                "Prometheus with sample data, registry with sample tags", servers.result
            )
        out.step(
            "serving every ranked image to the real node from local registries",
            lambda: _serve_images(cluster, registry),
        )
        assert cluster.nodes is not None
        helper = cluster.nodes.helper_image
        sa_kubeconfig = service_account_kubeconfig(cluster, workdir / "operator.kubeconfig", duration="48h")
        operator = out.step(
            "drop-operator run, with the chart's ServiceAccount token only",
            lambda: start_operator(
                sa_kubeconfig,
                workdir / "operator.log",
                log_format="console",
                # The demo's public image names are served by local mirrors to the real node only;
                # platform lookups would ask the public hosts themselves.
                extra_args=[f"--operator-image={helper}", "--no-platform-lookup"],
            ),
        )
        procs.append(operator.process)
        cluster.save_state()
        _save(workdir, procs)
        out.step(
            "kubectl apply the examples (sources pointed at the local servers)",
            lambda: _apply_examples(cluster, workdir, prometheus_url, registry.url),
        )
        out.step("waiting for the first discovery", lambda: _wait_discovered(cluster))
    except BaseException:
        print("\nthe demo did not start; stopping what it started", file=sys.stderr)
        for proc in reversed(procs):
            proc.stop()
        cluster.stop()
        _state_path(workdir).unlink(missing_ok=True)
        (workdir / "cluster" / "state.json").unlink(missing_ok=True)
        raise
    print(out.dim(f"  ready in {out.elapsed():.0f}s"))
    _show(workdir, kubeconfig, out)
    return 0


def _nodes(cluster: LocalCluster) -> None:
    cluster.start_kwok([KWOK_STAGES])
    create_kwok_nodes(cluster, NODES, {"node.kubernetes.io/instance-type": "ci-runner"})


def _install(cluster: LocalCluster) -> None:
    install_chart(cluster.kubeconfig, values={"replicaCount": "0"})


def _serve_images(cluster: LocalCluster, registry: RegistryServer) -> None:
    """The real node pulls every image the policies rank, from local registries only: the
    runner helper from the registry its source lists, the rest from the node registry."""
    assert cluster.nodes is not None
    ranked = [parse(image) for image, _ in sampledata.expected_ranking()]
    helper = {r.domain for r in ranked if r.path == sampledata.RUNNER_HELPER_REPOSITORY}
    serve_images(cluster.nodes, [r.name for r in ranked], hosted=dict.fromkeys(helper, registry))


def _start_sources(workdir: Path, procs: list[Process]) -> tuple[str, RegistryServer]:
    """Prometheus and the registry; each process goes into ``procs`` as soon as it runs."""
    times = sampledata.sample_times(past=1800, future=DATA_HOURS * 3600, step=240)
    prometheus = start_prometheus(
        workdir / "prometheus",
        sampledata.samples(sampledata.build_stuff_series(), times),
        basic_auth=SEED_CREDENTIALS,
    )
    procs.append(prometheus.process)
    registry = start_registry(workdir / "registry", auth="token", detached=True)
    procs.append(registry.process)
    if registry.token_process is not None:
        procs.append(registry.token_process)
    registry.seed_tags(sampledata.RUNNER_HELPER_REPOSITORY, sampledata.runner_helper_tags())
    return prometheus.url, registry


def _apply_examples(cluster: LocalCluster, workdir: Path, prometheus: str, registry: str) -> None:
    files = examples.write_localized(workdir / "examples", prometheus=prometheus, registry=registry)
    args: list[str] = ["apply"]
    for path in files:
        args += ["-f", str(path)]
    cluster.kubectl(*args)


def _wait_discovered(cluster: LocalCluster) -> None:
    def discovered() -> bool:
        out = cluster.kubectl("get", "discoverypolicies", "-o", "json").stdout
        items = json.loads(out)["items"]
        return len(items) == 2 and all((i.get("status") or {}).get("discoveredImages") for i in items)

    wait_until(discovered, 60, "both DiscoveryPolicies to publish images", interval=0.5)

    def materialized() -> bool:
        sets = json.loads(cluster.kubectl("get", "cachedimagesets", "-o", "json").stdout)["items"]
        return all(
            (s.get("status") or {}).get("desired")
            and (s.get("status") or {}).get("managed") == (s.get("status") or {}).get("desired")
            for s in sets
        )

    wait_until(materialized, 30, "the CachedImageSets to create their CachedImages", interval=0.5)


def _save(workdir: Path, procs: Sequence[Process]) -> None:
    state = {"processes": [(p.name, p.pid, str(p.log)) for p in procs]}
    _state_path(workdir).write_text(json.dumps(state, indent=2))


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _show(workdir: Path, kubeconfig: Path, out: Console) -> None:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    table = subprocess.run(
        [str(kubectl_binary()), "get", "discoverypolicies,cachedimagesets,cachedimages"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    command = "kubectl get discoverypolicies,cachedimagesets,cachedimages"
    print()
    print(out.bold(f"$ export KUBECONFIG={kubeconfig}"))
    print(out.bold(f"$ {command}"))
    print(table.stdout.rstrip() or table.stderr.rstrip())
    log = _rel(workdir / "operator.log")
    cluster = LocalCluster.load_state(workdir / "cluster")
    nodes = cluster.nodes.nodes if cluster is not None and cluster.nodes is not None else []
    socket = nodes[0].socket if nodes else "<containerd socket>"
    commands = [
        ("kubectl get cachedimages -w", "watch the caching progress"),
        (f"kubectl get pods -n {NAMESPACE} -w", "the pull pods coming and going"),
        ("kubectl get discoverypolicy popular-build-images -o yaml", "ranked images, scores, source health"),
        ("kubectl get events -A --sort-by=.metadata.creationTimestamp", "what the operator did"),
        (f"tail -f {log}", "the operator's log"),
        (f"ctr --address {socket} -n k8s.io images ls -q", "the real node's image store"),
        (
            f"kubectl get node {REAL_NODE} -o jsonpath='{{.status.images[*].names}}'",
            "what its kubelet reports",
        ),
    ]
    width = max(len(command) for command, _ in commands)
    explore = "\n".join(f"  {command:<{width}}  {meaning}" for command, meaning in commands)
    print(
        f"""
{out.bold("What you are looking at")}
  discoverypolicy/popular-build-images  asked Prometheus which images the build pods in namespace
      build-stuff used most (the docs' PromQL, with the docs' Secret for basic auth), dropped the
      ECR images with the docs' imageFilter, and kept the top 30 in its status.
  discoverypolicy/gitlab-helpers        listed the runner-helper tags in the registry, kept the 5
      newest vX.Y.Z versions and spelled them with the docs' imageTemplate.
  cachedimageset/*                      turn each ranking into CachedImage objects (DESIRED/READY).
  cachedimage/*                         one per image: CACHED counts the nodes that have it. Pull
      pods fill 4 simulated nodes and 1 real one, paced by pullpolicy/gentle (one pull per node
      at a time), so the numbers are still climbing.
  node/{REAL_NODE}                      a real kubelet on containerd: its pulls really land in its
      image store, served by local registries that stand in for the images' public hosts.

{out.bold("Explore")}
{explore}
  The applied files are in {_rel(workdir / "examples")}/ (from examples/, endpoints changed).

{out.bold("Stop")}
  task demo:down      stops every process the demo started (or: python -m devtools.demo down)"""
    )


def down(workdir: Path, *, quiet: bool = False) -> int:
    procs = _load_processes(workdir)
    # The operator first, so it releases its Lease while the API server is still there.
    for proc in sorted(procs, key=lambda p: p.name != "drop-operator"):
        proc.stop()
    cluster = LocalCluster.load_state(workdir / "cluster")
    if cluster is not None:
        # kube-controller-manager's node-lifecycle instance was saved with the cluster.
        cluster.stop()
        (workdir / "cluster" / "state.json").unlink()
    _state_path(workdir).unlink(missing_ok=True)
    if not quiet:
        print("demo stopped" if procs or cluster else "no demo running")
    return 0


def status(workdir: Path) -> int:
    cluster = LocalCluster.load_state(workdir / "cluster")
    procs = _load_processes(workdir) + (cluster.all_processes() if cluster else [])
    if not procs:
        print("no demo running")
        return 1
    for proc in procs:
        print(f"{proc.name:<26} pid {proc.pid!s:<8} {'running' if proc.alive() else 'stopped'}")
    print(f"export KUBECONFIG={workdir / 'cluster' / 'kubeconfig'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.demo", description="The whole product on a local control plane."
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=DEMO_DIR, help="state directory (default: .local/demo)")
    args = parser.parse_args(argv)
    workdir: Path = args.dir.resolve()
    if args.command == "up":
        return up(workdir)
    if args.command == "down":
        return down(workdir)
    return status(workdir)


if __name__ == "__main__":
    raise SystemExit(main())
