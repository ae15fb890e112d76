"""Cluster mode (``DROP_E2E_CLUSTER`` set, e.g. kind in GitHub Actions): the cluster in
``$KUBECONFIG``, the chart installed with the image under test, the operator running in-cluster.

:class:`ChartOperator` is the part shared with the local in-cluster mode
(``e2e/incluster_local.py``): the operator as the chart's two-replica Deployment, its leader pod
killed, ``helm uninstall``.

Prometheus and a registry run in namespace ``drop-e2e`` from ``e2e/manifests/sources.yaml``:
Prometheus scrapes a static file of sample series (the same generator as local mode, restricted
to small public images so that real nodes can really pull every ranked image), protected by the
seed Secret's basic-auth credentials; the registry gets GitLab-runner-helper-like tags pushed
through a port-forward, for runner releases whose helper images exist.
"""

from __future__ import annotations

import base64
import json
import shutil
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import bcrypt
import yaml

from devtools import sampledata
from devtools.http import wait_http
from devtools.process import Process, free_port
from devtools.registry import RegistryServer
from devtools.stack import helm, install_chart
from e2e.environment import SEED_PASSWORD, SEED_USERNAME, Environment, Settings, kubeconfig_from_env
from e2e.kube import Kubectl, eventually

SOURCES_NAMESPACE = "drop-e2e"
MANIFESTS = Path(__file__).parent / "manifests"
QUERY = (
    'count(container_memory_working_set_bytes{container!="", container!="POD", '
    'namespace="build-stuff", cluster="mycluster"}) by (image)'
)


OPERATOR_SELECTOR = "app.kubernetes.io/component=operator"


class ChartOperator(Environment):
    """The operator as the chart's Deployment in the cluster: two replicas from the image under
    test, leader election between the pods, the chart's probes, Pod Security "restricted" on the
    release namespace, a read-only root filesystem (the chart's defaults)."""

    releases_lease_on_uninstall: ClassVar[bool] = False

    def install_operator(
        self,
        image: str,
        values: Mapping[str, str] | None = None,
        string_values: Mapping[str, str] | None = None,
    ) -> None:
        """``helm upgrade --install`` with ``image`` (``repository:tag``); returns once both
        replicas are Ready (``--wait``)."""
        repository, _, tag = image.rpartition(":")
        install_chart(
            self.kubectl.kubeconfig,
            release=self.release,
            namespace=self.namespace,
            values={
                "image.repository": repository,
                "image.tag": tag,
                "image.pullPolicy": "IfNotPresent",
                # Two replicas: leader election between pods (test_2_leader_failover.py).
                "replicaCount": "2",
                "logLevel": "debug",
                "leaderElection.leaseName": self.lease_name,
                **(values or {}),
            },
            string_values=string_values,
            wait=True,
        )

    def operator_pods(self) -> list[dict[str, Any]]:
        return self.kubectl.items(
            "pods",
            namespace=self.namespace,
            selector=f"app.kubernetes.io/instance={self.release},{OPERATOR_SELECTOR}",
        )

    def kill_leader(self) -> str:
        holder = self.leader()
        # The identity is "<hostname>_<random>", and a pod's hostname is its name.
        pod = holder.rpartition("_")[0]
        self.kubectl.run(
            "delete", "pod", pod, f"--namespace={self.namespace}", "--grace-period=0", "--force",
            "--wait=false",
        )  # fmt: skip

        def replaced() -> bool:
            ready = [
                p["metadata"]["name"]
                for p in self.operator_pods()
                if any(
                    c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", [])
                )
            ]
            return pod not in ready and len(ready) == 2

        eventually(replaced, within=300, what=f"a replacement for pod {pod} to be Ready")
        return holder

    def uninstall(self) -> None:
        helm(self.kubectl.kubeconfig, "uninstall", self.release, f"--namespace={self.namespace}", "--wait")

    def operator_log(self, lines: int = 120) -> str:
        return self.kubectl.run(
            "logs",
            f"--namespace={self.namespace}",
            f"--selector=app.kubernetes.io/instance={self.release}",
            "--all-containers",
            "--prefix",
            f"--tail={lines}",
            check=False,
        )


@dataclass
class ClusterEnvironment(ChartOperator):
    workdir: Path = Path()
    kubeconfig: Path = Path()
    forwards: dict[str, Process] = field(default_factory=dict)

    @classmethod
    def start(cls, settings: Settings, workdir: Path) -> ClusterEnvironment:
        kubeconfig = kubeconfig_from_env()
        binary = shutil.which("kubectl")
        if binary is None:
            raise RuntimeError("cluster mode needs kubectl on PATH")
        env = cls(
            settings,
            Kubectl(binary, kubeconfig),
            workdir=workdir,
            kubeconfig=kubeconfig,
            patience=5.0,
            nodes_start_empty=False,
        )
        try:
            env._start()
        except BaseException:
            env.close()
            raise
        return env

    def _start(self) -> None:
        self.install_operator(self.settings.image)
        self.nodes = [
            node["metadata"]["name"]
            for node in self.kubectl.items("nodes")
            if not any(
                t.get("effect") in ("NoSchedule", "NoExecute") for t in node["spec"].get("taints") or []
            )
        ]
        self._deploy_sources()
        self.prometheus_url = f"http://prometheus.{SOURCES_NAMESPACE}.svc:9090"
        self.registry_url = f"http://registry.{SOURCES_NAMESPACE}.svc:5000"

    def expected_ranking(self) -> list[tuple[str, int]]:
        return sampledata.expected_ranking(sampledata.KIND_IMAGES)

    def expected_helper_tags(self) -> list[str]:
        return sampledata.expected_helper_tags(sampledata.KIND_HELPER_VERSIONS)

    # -- the sources -----------------------------------------------------------------------------
    def _deploy_sources(self) -> None:
        hashed = bcrypt.hashpw(SEED_PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
        series = sampledata.build_stuff_series(sampledata.KIND_IMAGES)
        self.kubectl.apply(
            [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SOURCES_NAMESPACE}},
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "prometheus-web", "namespace": SOURCES_NAMESPACE},
                    "data": {"web.yml": yaml.safe_dump({"basic_auth_users": {SEED_USERNAME: hashed}})},
                },
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "sample-metrics", "namespace": SOURCES_NAMESPACE},
                    "data": {"metrics": sampledata.exposition(series)},
                },
            ]
        )
        self.kubectl.run("apply", "-f", str(MANIFESTS / "sources.yaml"))
        for name in ("registry", "prometheus"):
            self._rollout(name)
        registry = self._forward("registry", 5000)
        pusher = RegistryServer(
            url=registry,
            host=registry.removeprefix("http://"),
            process=self.forwards["registry"],
            storage=self.workdir,
            auth="none",
            version=2,
        )
        wait_http(f"{registry}/v2/", timeout=60)
        pusher.push_tags(
            sampledata.RUNNER_HELPER_REPOSITORY,
            sampledata.runner_helper_tags(sampledata.KIND_HELPER_VERSIONS),
        )
        self._wait_scraped()

    def _rollout(self, name: str) -> None:
        self.kubectl.run(
            "rollout",
            "status",
            f"deployment/{name}",
            f"--namespace={SOURCES_NAMESPACE}",
            "--timeout=300s",
            timeout=320,
        )

    def _forward(self, service: str, port: int) -> str:
        """``kubectl port-forward`` to ``service`` on a free loopback port; its URL."""
        if service in self.forwards:
            self.forwards[service].stop()
        local = free_port()
        proc = Process(
            f"port-forward-{service}",
            [
                self.kubectl.binary,
                f"--kubeconfig={self.kubeconfig}",
                f"--namespace={SOURCES_NAMESPACE}",
                "port-forward",
                f"service/{service}",
                f"{local}:{port}",
            ],
            self.workdir / f"port-forward-{service}.log",
        )
        proc.start()
        self.forwards[service] = proc
        return f"http://127.0.0.1:{local}"

    def _wait_scraped(self) -> None:
        """Until Prometheus answers the documented query with every sample image (first scrape)."""
        url = self._forward("prometheus", 9090)
        auth = base64.b64encode(f"{SEED_USERNAME}:{SEED_PASSWORD}".encode()).decode()
        want = {image for image, _, _ in sampledata.KIND_IMAGES}

        def scraped() -> bool:
            request = urllib.request.Request(
                f"{url}/api/v1/query?{urllib.parse.urlencode({'query': QUERY})}",
                headers={"Authorization": f"Basic {auth}"},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as resp:
                    result = json.load(resp)["data"]["result"]
            except OSError:
                return False
            return {r["metric"].get("image") for r in result} == want

        eventually(scraped, within=120, what="Prometheus to scrape the sample series")
        self.forwards.pop("prometheus").stop()

    # -- scenario hooks --------------------------------------------------------------------------
    def stop_prometheus(self) -> None:
        self.kubectl.run("scale", "deployment/prometheus", "--replicas=0", f"--namespace={SOURCES_NAMESPACE}")
        eventually(
            lambda: not self.kubectl.items("pods", namespace=SOURCES_NAMESPACE, selector="app=prometheus"),
            within=120,
            what="Prometheus pods to be gone",
        )

    def start_prometheus(self) -> None:
        self.kubectl.run("scale", "deployment/prometheus", "--replicas=1", f"--namespace={SOURCES_NAMESPACE}")
        self._rollout("prometheus")
        self._wait_scraped()

    def close(self) -> None:
        for proc in self.forwards.values():
            proc.stop()
        self.kubectl.run(
            "delete", "namespace", SOURCES_NAMESPACE, "--ignore-not-found", "--wait=false", check=False
        )
