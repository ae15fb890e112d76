"""Where the e2e suite runs: the local control plane (default) or a real cluster (DROP_E2E_CLUSTER).

Three modes, each giving the scenarios the same things: an admin :class:`Kubectl`, the chart
installed, the operator running with the chart's ServiceAccount, the nodes pulls should land on,
and the two sources the documentation's policies query (Prometheus with the seed's credentials, a
registry with GitLab-runner-helper-like tags), which a scenario can take down and bring back.

``local``            the local control plane; the operator as two local processes (``e2e/local.py``)
``incluster-local``  the local control plane; the operator as the chart's Deployment on its real
                     nodes, from the image built here (``e2e/incluster_local.py``)
``cluster``          the cluster in ``$KUBECONFIG``, e.g. kind in CI (``e2e/incluster.py``)

Without settings the suite runs ``local`` and then ``incluster-local`` (each scenario once per
mode, the whole suite against one environment before the next starts).

Settings (all optional):

``DROP_E2E_MODE``       ``local``, ``incluster-local`` or ``cluster``: run that mode only
``DROP_E2E_CLUSTER``    any value: use ``$KUBECONFIG`` instead of starting a local control plane
                        (the same as ``DROP_E2E_MODE=cluster``)
``DROP_E2E_RELEASE``    Helm release name (default ``drop-operator``)
``DROP_E2E_NAMESPACE``  release namespace (default ``drop-system``)
``DROP_E2E_IMAGE``      operator image for cluster mode, ``repository:tag`` (default ``drop-operator:e2e``)
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from devtools import sampledata
from devtools.realnodes import RealNode
from e2e.kube import Kubectl

SEED_USERNAME = "admin"
SEED_PASSWORD = "my-prometheus-password"  # the seed's prometheus-creds Secret, verbatim


MODES = ("local", "incluster-local", "cluster")
LOCAL_MODES = ("local", "incluster-local")


@dataclass(frozen=True)
class Settings:
    cluster: str | None
    release: str
    namespace: str
    image: str
    modes: tuple[str, ...] = LOCAL_MODES

    @classmethod
    def from_env(cls) -> Settings:
        cluster = os.environ.get("DROP_E2E_CLUSTER") or None
        mode = os.environ.get("DROP_E2E_MODE") or ("cluster" if cluster else "")
        if mode and mode not in MODES:
            raise ValueError(f"DROP_E2E_MODE={mode!r}: expected one of {', '.join(MODES)}")
        return cls(
            cluster=cluster or ("kubeconfig" if mode == "cluster" else None),
            release=os.environ.get("DROP_E2E_RELEASE") or "drop-operator",
            namespace=os.environ.get("DROP_E2E_NAMESPACE") or "drop-system",
            image=os.environ.get("DROP_E2E_IMAGE") or "drop-operator:e2e",
            modes=(mode,) if mode else LOCAL_MODES,
        )


@dataclass
class Environment(abc.ABC):
    """A cluster with the product installed and the two sources reachable from the operator."""

    settings: Settings
    kubectl: Kubectl
    prometheus_url: str = ""
    registry_url: str = ""
    nodes: list[str] = field(default_factory=list)
    # Real pulls on real nodes take longer than kwok's simulated ones.
    patience: float = 1.0
    # Simulated nodes hold no images, so every image needs a pull pod on every node.
    nodes_start_empty: bool = True
    # Nodes whose containerd store the suite can read (local mode), to check pulls really landed.
    real_nodes: list[RealNode] = field(default_factory=list)
    # Whether the leader still can clear the Lease's holder once `helm uninstall` ran: the local
    # replicas are stopped first; in-cluster pods stop after the chart's RBAC is gone.
    releases_lease_on_uninstall: ClassVar[bool] = True

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    @property
    def release(self) -> str:
        return self.settings.release

    @property
    def lease_name(self) -> str:
        return "drop-operator"

    def service_account(self) -> str:
        """The ServiceAccount the chart made for the operator."""
        accounts = self.kubectl.items(
            "serviceaccounts",
            namespace=self.namespace,
            selector=f"app.kubernetes.io/instance={self.release}",
        )
        assert len(accounts) == 1, f"expected the chart's one ServiceAccount, found {accounts}"
        return str(accounts[0]["metadata"]["name"])

    def expected_ranking(self) -> list[tuple[str, int]]:
        """What the Prometheus example must publish from this environment's sample data."""
        return sampledata.expected_ranking()

    def expected_helper_tags(self) -> list[str]:
        """The tags the registry example must pick from this environment's registry."""
        return sampledata.expected_helper_tags()

    @property
    def operator_image(self) -> str:
        """The operator's image: what the chart runs, and where pull pods take drop-noop from."""
        return self.settings.image

    def leader(self) -> str:
        """``holderIdentity`` of the operator's Lease; "" when no replica holds it."""
        lease = self.kubectl.get("lease", self.lease_name, namespace=self.namespace) or {}
        return str((lease.get("spec") or {}).get("holderIdentity") or "")

    @abc.abstractmethod
    def kill_leader(self) -> str:
        """Kill the replica holding the Lease, without a clean shutdown, and return its identity.

        Returns once a replacement replica runs again (as the Deployment would make one), so that
        there are two replicas, one of them waiting for the Lease.
        """

    @abc.abstractmethod
    def stop_prometheus(self) -> None:
        """Take Prometheus down (the source outage)."""

    @abc.abstractmethod
    def start_prometheus(self) -> None:
        """Bring Prometheus back with the same data and address."""

    @abc.abstractmethod
    def uninstall(self) -> None:
        """Stop the operator and ``helm uninstall`` the release."""

    @abc.abstractmethod
    def operator_log(self, lines: int = 120) -> str:
        """The operator's recent log lines, for failure reports."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop everything this environment started, by PID."""


def kubeconfig_from_env() -> Path:
    return Path(os.environ.get("KUBECONFIG") or Path.home() / ".kube" / "config")
