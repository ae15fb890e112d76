"""Local mode: the real control plane with kwok nodes and real nodes (containerd + kubelet), the
chart installed with helm, and the operator as two local processes (leader and standby, as the
chart's two replicas) that hold nothing but a TokenRequest token of the chart's ServiceAccount — so
every scenario also proves the chart's RBAC is enough.

Prometheus (with the seed Secret's basic-auth credentials) and a token-auth registry run on
127.0.0.1 with the sample data in :mod:`devtools.sampledata`. Every image the documentation's
policies rank is served to the real nodes by a local registry (the registry source's own one for
the runner helper, the cluster's node registry for the rest), so the real nodes really pull them.
"""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from devtools import image, sampledata, sampleimages
from devtools.localcluster import LocalCluster, kubectl_binary
from devtools.process import wait_until
from devtools.prometheus import PrometheusServer, start_prometheus
from devtools.registry import RegistryServer, start_registry
from devtools.release import package_version
from devtools.stack import (
    KWOK_STAGES,
    OperatorProcess,
    create_kwok_nodes,
    helm,
    install_chart,
    serve_images,
    service_account_kubeconfig,
    start_operator,
)
from drop_operator.imageref import parse
from e2e.environment import SEED_PASSWORD, SEED_USERNAME, Environment, Settings
from e2e.kube import Kubectl, eventually

NODES = ("kwok-node-0", "kwok-node-1", "kwok-node-2")
REAL_NODES = 2
_IDENTITY = re.compile(r"identity=(\S+)")
_COLOR = re.compile(r"\x1b\[[0-9;]*m")


def _identity(operator: OperatorProcess) -> str:
    """The Lease identity a replica logs on start ("waiting for leadership ... identity=...")."""
    match = _IDENTITY.search(_COLOR.sub("", operator.process.log.read_text(errors="replace")))
    return match.group(1) if match else ""


@dataclass
class LocalEnvironment(Environment):
    """Local mode; the in-cluster local mode (``e2e/incluster_local.py``) changes where the
    operator runs (:meth:`_start_operator`) and how pods reach the sources (:meth:`_reachable`)."""

    #: Start the control plane for workloads on the real nodes (LocalCluster's ``in_cluster``).
    in_cluster: ClassVar[bool] = False
    #: The host the registry's token realm names: where the operator reaches the token server.
    token_realm_host: ClassVar[str] = "127.0.0.1"

    workdir: Path = Path()
    cluster: LocalCluster | None = None
    prometheus: PrometheusServer | None = None
    registry: RegistryServer | None = None
    operator: OperatorProcess | None = None
    standby: OperatorProcess | None = None
    operator_kubeconfig: Path = Path()
    replicas_started: int = 0
    real_image: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def start(cls, settings: Settings, workdir: Path) -> LocalEnvironment:
        cluster = LocalCluster(workdir / "cluster", real_nodes=REAL_NODES, in_cluster=cls.in_cluster)
        env = cls(settings, Kubectl(kubectl_binary(), cluster.kubeconfig), workdir=workdir, cluster=cluster)
        try:
            env._start()
        except BaseException:
            env.close()
            raise
        return env

    def _lap(self, what: str, since: float) -> float:
        now = time.monotonic()
        self.timings[what] = round(now - since, 2)
        return now

    def _start(self) -> None:
        assert self.cluster is not None
        t = time.monotonic()
        with ThreadPoolExecutor(2) as pool:
            # The sources do not need the cluster: start them while the control plane comes up.
            sources = pool.submit(self._start_sources)
            # Nor does building the operator image (reused when the sources have not changed).
            built = pool.submit(image.build, reuse=True)
            self.cluster.start()
            t = self._lap("control plane", t)
            self.cluster.start_kwok([KWOK_STAGES])
            create_kwok_nodes(self.cluster, NODES, {"drop.corewire.io/e2e": "true"})
            assert self.cluster.nodes is not None
            self.real_nodes = list(self.cluster.nodes.nodes)
            self.nodes = [*NODES, *(node.name for node in self.real_nodes)]
            # Pull pods take drop-noop from the real operator image, which the real nodes pull
            # from the node registry like any other image.
            assert self.cluster.nodes.registry is not None
            self.real_image = f"{self.cluster.nodes.registry.host}/drop-operator:{package_version()}"
            image.push(built.result().id, self.real_image)
            t = self._lap("operator image", t)
            self._start_operator()
            t = self._lap("operator ready", t)
            sources.result()
            self.prometheus_url = self._reachable(self.prometheus_url)
            self.registry_url = self._reachable(self.registry_url)
            self._serve_ranked_images()
        self._wait_nodes_schedulable()
        self._lap("nodes ready", t)

    def _start_operator(self) -> None:
        """The chart with no replicas, and the operator as two local processes with a token of
        the chart's ServiceAccount."""
        assert self.cluster is not None
        install_chart(
            self.cluster.kubeconfig,
            release=self.release,
            namespace=self.namespace,
            values={"replicaCount": "0", "leaderElection.leaseName": self.lease_name},
        )
        self.operator_kubeconfig = service_account_kubeconfig(
            self.cluster,
            self.workdir / "operator.kubeconfig",
            service_account=self.service_account(),
            namespace=self.namespace,
        )
        # Started one after the other, so the first one leads and the second waits.
        self.operator = self._start_replica()
        self.standby = self._start_replica()

    def _reachable(self, url: str) -> str:
        """``url`` (a server on 127.0.0.1) as the operator reaches it: as it is, from here."""
        return url

    @property
    def operator_image(self) -> str:
        """The operator image built from the Dockerfile (:mod:`devtools.image`), in the node
        registry; the operator itself runs here as a process, its pull pods run the image."""
        assert self.real_image, "the operator image is pushed once the nodes are up"
        return self.real_image

    def _start_replica(self) -> OperatorProcess:
        self.replicas_started += 1
        name = "operator" if self.replicas_started == 1 else f"operator-{self.replicas_started}"
        return start_operator(
            self.operator_kubeconfig,
            self.workdir / f"{name}.log",
            namespace=self.namespace,
            lease_name=self.lease_name,
            log_format="console",
            extra_args=[
                "--log-level=debug",
                f"--operator-image={self.operator_image}",
                # The ranked images carry public registry names that only the nodes' mirrors serve
                # here; the operator asking those hosts for platforms would leave the machine.
                "--no-platform-lookup",
            ],
        )

    def _start_sources(self) -> None:
        times = sampledata.sample_times(past=600, future=3 * 3600, step=240)
        self.prometheus = start_prometheus(
            self.workdir / "prometheus",
            sampledata.samples(sampledata.build_stuff_series(), times),
            basic_auth=(SEED_USERNAME, SEED_PASSWORD),
        )
        self.prometheus_url = self.prometheus.url
        self.registry = start_registry(
            self.workdir / "registry", auth="token", token_realm_host=self.token_realm_host
        )
        self.registry.seed_tags(sampledata.RUNNER_HELPER_REPOSITORY, sampledata.runner_helper_tags())
        self.registry_url = self.registry.url

    def _serve_ranked_images(self) -> None:
        """Every image the policies can rank, pullable by the real nodes from local registries."""
        assert self.cluster is not None and self.cluster.nodes is not None and self.registry is not None
        ranked = [parse(image) for image, _ in self.expected_ranking()]
        # The runner helper's host is served by the registry its registry source lists.
        helper = {r.domain for r in ranked if r.path == sampledata.RUNNER_HELPER_REPOSITORY}
        # Each helper tag either policy ranks is an image of its own, as upstream. The seeded tags
        # share one content, which a kubelet lists in node.status.images under five names only;
        # with kwok's pull pods reporting another digest for it, a real node would then seem to
        # have lost the tags it does not name.
        helper_tags = {r.tag for r in ranked if r.path == sampledata.RUNNER_HELPER_REPOSITORY}
        helper_tags.update(f"x86_64-{tag}" for tag in self.expected_helper_tags())
        for tag in sorted(t for t in helper_tags if t):
            name = f"{sampledata.RUNNER_HELPER_REPOSITORY}:{tag}"
            self.registry.push(sampledata.RUNNER_HELPER_REPOSITORY, [tag], sampleimages.unique(name))
        serve_images(
            self.cluster.nodes, [r.name for r in ranked], hosted=dict.fromkeys(helper, self.registry)
        )

    def _wait_nodes_schedulable(self) -> None:
        def schedulable() -> bool:
            nodes = {n["metadata"]["name"]: n for n in self.kubectl.items("nodes")}
            return all(name in nodes and not nodes[name]["spec"].get("taints") for name in self.nodes)

        eventually(schedulable, within=60, what="kwok nodes Ready without the not-ready taint")

    # -- scenario hooks --------------------------------------------------------------------------
    def kill_leader(self) -> str:
        holder = self.leader()
        replicas = [r for r in (self.operator, self.standby) if r is not None]
        leader = next((r for r in replicas if _identity(r) == holder), None)
        assert leader is not None and leader.process.pid is not None, (
            f"the Lease holder {holder!r} is none of {[_identity(r) for r in replicas]}"
        )
        os.kill(leader.process.pid, signal.SIGKILL)
        wait_until(lambda: not leader.process.alive(), 10, "the killed leader to exit")
        self.operator = next(r for r in replicas if r is not leader)
        self.standby = self._start_replica()
        return holder

    def stop_prometheus(self) -> None:
        assert self.prometheus is not None
        self.prometheus.stop()

    def start_prometheus(self) -> None:
        assert self.prometheus is not None
        self.prometheus.start()

    def uninstall(self) -> None:
        assert self.cluster is not None
        for replica in (self.standby, self.operator):
            if replica is not None:
                replica.stop()
        helm(self.cluster.kubeconfig, "uninstall", self.release, f"--namespace={self.namespace}", "--wait")

    def operator_log(self, lines: int = 120) -> str:
        return self.operator.log_tail(lines) if self.operator else "(operator not started)"

    def close(self) -> None:
        for replica in (self.standby, self.operator):
            if replica is not None:
                replica.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.registry is not None:
            self.registry.stop()
        if self.cluster is not None:
            self.cluster.stop()
