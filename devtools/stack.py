"""The product on a local control plane: kwok nodes and real nodes, the Helm chart, and the
operator running as a local process with the chart's ServiceAccount token.

Shared by the e2e suite (local mode) and the demo, so the demo shows exactly what e2e proves.
The chart's Deployment is installed with 0 replicas and the operator runs here instead —
authenticated by a TokenRequest token of the chart's ServiceAccount and nothing else, which makes
the chart's RBAC the only thing it can do. Its pull pods copy drop-noop out of the helper image the
real nodes pull from the cluster's node registry (:mod:`devtools.realnodes`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from devtools import sampleimages
from devtools.http import wait_http
from devtools.localcluster import KWOK_NODE_ANNOTATION, LocalCluster, kubectl_binary
from devtools.process import Process, free_port
from devtools.realnodes import RealNodes
from devtools.registry import RegistryServer
from devtools.tools import REPO_ROOT, ToolMissingError, go_tool
from drop_operator.imageref import parse

__all__ = [
    "CHART",
    "KWOK_STAGES",
    "NAMESPACE",
    "RELEASE",
    "OperatorProcess",
    "create_kwok_nodes",
    "helm",
    "helm_binary",
    "install_chart",
    "kwok_node",
    "serve_images",
    "service_account_kubeconfig",
    "start_operator",
]

RELEASE = "drop-operator"
NAMESPACE = "drop-system"
CHART = REPO_ROOT / "charts" / "drop-operator"
# Pull pods succeed after a short delay (tags ending in :fail/:denied/:hang fail), nodes go Ready.
KWOK_STAGES = REPO_ROOT / "tests" / "data" / "kwok" / "pull-pods.yaml"


def helm_binary() -> Path:
    """The pinned helm from `task tools`, else one on PATH (CI installs its own)."""
    try:
        return go_tool("helm")
    except ToolMissingError:
        found = shutil.which("helm")
        if not found:
            raise
        return Path(found)


def helm(kubeconfig: Path | str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run helm against ``kubeconfig``; a failure raises with helm's own output."""
    result = subprocess.run(
        [str(helm_binary()), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def install_chart(
    kubeconfig: Path | str,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    values: Mapping[str, str] | None = None,
    string_values: Mapping[str, str] | None = None,
    wait: bool = False,
    chart: Path | str = CHART,
    extra_args: Sequence[str] = (),
) -> None:
    """``helm upgrade --install`` the chart into ``namespace``, which enforces Pod Security
    "restricted" so that every pull pod the operator creates is held to it.

    ``values`` are ``--set`` (helm reads numbers and booleans in them), ``string_values`` are
    ``--set-string`` (kept strings, e.g. an environment variable's value that looks like a number).
    ``chart`` is a chart directory, a packaged ``.tgz`` or an ``oci://`` reference; ``extra_args``
    go to helm as they are (e.g. ``--version``, ``--plain-http``)."""
    kubectl = _kubectl(kubeconfig)
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    }
    subprocess.run(
        [*kubectl, "apply", "-f", "-"],
        input=json.dumps(manifest),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    args = ["upgrade", "--install", release, str(chart), f"--namespace={namespace}", *extra_args]
    for key, value in (values or {}).items():
        args.append(f"--set={key}={value}")
    for key, value in (string_values or {}).items():
        args.append(f"--set-string={key}={value}")
    if wait:
        args += ["--wait", "--timeout=5m"]
    helm(kubeconfig, *args)


def kwok_node(name: str, labels: Mapping[str, str] = MappingProxyType({})) -> dict[str, Any]:
    """A Node object that kwok manages (a linux/amd64 node labelled ``type: kwok`` and ``labels``)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                **labels,
            },
        },
        "spec": {},
    }


def create_kwok_nodes(cluster: LocalCluster, names: Sequence[str], labels: Mapping[str, str]) -> None:
    """Nodes that kwok (started with :data:`KWOK_STAGES`) runs; they report Ready within a second."""
    docs = [kwok_node(name, labels) for name in names]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def serve_images(
    nodes: RealNodes, references: Iterable[str], *, hosted: Mapping[str, RegistryServer] | None = None
) -> list[str]:
    """Make ``references`` (as users write them, on any registry host) pullable by the real nodes
    from this machine only; return them normalized.

    A reference whose registry host is a key of ``hosted`` is served by that local registry, which
    already holds it (the demo's registry source lists it there). Every other one is pushed to the
    node registry as a small image of its own. Each host is then mirrored to its local registry
    with no fallback, so nothing is fetched from the host the reference names.
    """
    assert nodes.registry is not None
    elsewhere = dict(hosted or {})
    mirrors: dict[str, RegistryServer] = dict(elsewhere)
    normalized = []
    for reference in references:
        ref = parse(reference, default_tag="latest")
        normalized.append(ref.name)
        if ref.domain not in elsewhere:
            nodes.registry.push(ref.path, [ref.tag or "latest"], sampleimages.unique(ref.name))
            mirrors[ref.domain] = nodes.registry
    for host, registry in mirrors.items():
        nodes.mirror([host], registry)
    return normalized


def service_account_kubeconfig(
    cluster: LocalCluster,
    path: Path,
    *,
    service_account: str = RELEASE,
    namespace: str = NAMESPACE,
    duration: str = "24h",
) -> Path:
    """A kubeconfig whose only credential is a TokenRequest token of ``service_account``."""
    token = cluster.kubectl(
        "create", "token", service_account, f"--namespace={namespace}", f"--duration={duration}"
    ).stdout.strip()
    admin = json.loads(cluster.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [
            {
                "name": service_account,
                "context": {"cluster": admin["clusters"][0]["name"], "user": service_account},
            }
        ],
        "current-context": service_account,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


@dataclass
class OperatorProcess:
    """``drop-operator run`` as a local process: its PID, log file and endpoints."""

    process: Process
    metrics_url: str
    probe_url: str

    def stop(self) -> None:
        """SIGTERM by PID: the operator drains its reconciles and releases its Lease."""
        self.process.stop(timeout=40)

    def log_tail(self, lines: int = 80) -> str:
        return self.process.log_tail(lines)


def start_operator(
    kubeconfig: Path,
    log: Path,
    *,
    namespace: str = NAMESPACE,
    lease_name: str = RELEASE,
    leader_elect: bool = True,
    log_format: str = "console",
    extra_args: Sequence[str] = (),
    ready_timeout: float = 60.0,
    source: Path | None = None,
    python: str | None = None,
) -> OperatorProcess:
    """Start the operator and wait until its ``/readyz`` answers (informers synced).

    ``source`` is a directory holding another ``drop_operator`` package (an earlier release's,
    extracted from git history) to run instead of this checkout's. ``python`` is the interpreter
    to run it with (default: this one's), e.g. a virtualenv's with only the runtime dependencies;
    it runs this checkout's package (or ``source``'s) either way, not a copy installed there.
    """
    metrics_port, probe_port = free_port(), free_port()
    if python is not None and source is None:
        source = REPO_ROOT
    module = (
        ["-m", "drop_operator"]
        if source is None
        else [
            "-c",
            "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
            "runpy.run_module('drop_operator', run_name='__main__', alter_sys=True)",
            str(source),
        ]
    )
    args = [
        python or sys.executable,
        *module,
        "run",
        f"--kubeconfig={kubeconfig}",
        f"--namespace={namespace}",
        "--leader-elect" if leader_elect else "--no-leader-elect",
        f"--lease-name={lease_name}",
        f"--metrics-bind-address=127.0.0.1:{metrics_port}",
        f"--health-probe-bind-address=127.0.0.1:{probe_port}",
        f"--log-format={log_format}",
        "--grace-period=10",
        *extra_args,
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = Process("drop-operator", args, log)
    proc.start()
    operator = OperatorProcess(
        proc, f"http://127.0.0.1:{metrics_port}/metrics", f"http://127.0.0.1:{probe_port}"
    )
    try:
        wait_http(f"{operator.probe_url}/readyz", timeout=ready_timeout, alive=proc.alive)
    except Exception as err:
        tail = proc.log_tail(60)
        proc.stop()
        raise RuntimeError(f"the operator did not become ready: {err}\n--- operator log ---\n{tail}") from err
    return operator


def _kubectl(kubeconfig: Path | str) -> list[str]:
    return [str(kubectl_binary()), f"--kubeconfig={kubeconfig}"]
