"""In-cluster local mode (``DROP_E2E_MODE=incluster-local``): the local control plane of local mode,
with the operator running in it as the chart's Deployment — the real image, built here from the
Dockerfile (:mod:`devtools.image`), on the real nodes.

Everything else is local mode's (``e2e/local.py``): kwok nodes beside two real nodes, Prometheus
and the token-auth registry on 127.0.0.1 with the sample data, every ranked image served to the
real nodes from local registries. The in-cluster part is cluster mode's (``e2e/incluster.py``):
two replicas with leader election between pods, the chart's probes, Pod Security "restricted" on
the release namespace, a read-only root filesystem; the leader pod is force-deleted and the
Deployment replaces it; ``helm uninstall``.

What the local control plane adds for it (:class:`devtools.localcluster.LocalCluster` with
``in_cluster``): pods reach this machine at :data:`devtools.realnodes.GATEWAY` on their bridge,
where forwarders lead to the API server and to the sources on 127.0.0.1; the operator finds the
API server through ``KUBERNETES_SERVICE_HOST``/``PORT`` set with the chart's ``extraEnv`` (there
is no kube-proxy for the ``kubernetes`` Service), with the ServiceAccount token the kubelet
mounts. The operator pods are kept off the kwok nodes (``nodeSelector``), where nothing would
really run them.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import ClassVar

from devtools.realnodes import GATEWAY, REAL_NODE_LABEL
from e2e.incluster import ChartOperator
from e2e.local import LocalEnvironment


@dataclass
class InClusterLocalEnvironment(ChartOperator, LocalEnvironment):
    in_cluster: ClassVar[bool] = True
    token_realm_host: ClassVar[str] = GATEWAY

    def _start_operator(self) -> None:
        assert self.cluster is not None
        env = self.cluster.in_cluster_env
        self.install_operator(
            self.operator_image,
            values={
                f"nodeSelector.{REAL_NODE_LABEL[0]}": REAL_NODE_LABEL[1],
                # The ranked images carry public registry names that only the nodes' mirrors
                # serve here; the operator asking those hosts for platforms would leave the machine.
                "platformLookup.enabled": "false",
            },
            string_values={
                **{f"extraEnv[{i}].name": name for i, name in enumerate(env)},
                **{f"extraEnv[{i}].value": value for i, value in enumerate(env.values())},
            },
        )

    def _reachable(self, url: str) -> str:
        """``url`` as pods reach it: through a forwarder on the gateway (the token server that
        the registry's realm names too)."""
        assert self.cluster is not None
        if self.registry is not None and self.registry.token_server is not None:
            self.cluster.expose(self.registry.token_server.port)
        parts = urllib.parse.urlsplit(url)
        assert parts.port is not None, url
        return parts._replace(netloc=self.cluster.expose(parts.port)).geturl()

    def operator_log(self, lines: int = 120) -> str:
        """The operator pods' logs, read from the real nodes' pod-log directories (``kubectl
        logs`` cannot work here: the nodes have no address the API server could reach their
        kubelets at)."""
        chunks = []
        for node in self.real_nodes:
            for log in sorted((node.dir / "pod-logs").glob(f"{self.namespace}_*/operator/*.log")):
                pod = log.parent.parent.name.split("_")[1]
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- {pod} on {node.name} ({log.name})\n" + "\n".join(tail))
        return "\n".join(chunks) or "(no operator pod has logged anything)"
