"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok for simulated nodes, and real nodes (containerd + kubelet, see
:mod:`devtools.realnodes`) that really pull images.

The tests, the e2e suite and the demo all start the same binaries the same way through this module,
so what passes in a test is what a person gets from ``task cluster:up``. Every process is started by
us, tracked by PID and stopped by PID; nothing binds outside loopback, except in ``in_cluster`` mode.

``in_cluster`` mode runs workloads on the real nodes, such as the operator's own Deployment: the
nodes' bridge gets this machine's address :data:`~devtools.realnodes.GATEWAY` (pods reach it
on-link and nothing beyond it), the API server is forwarded there by a userspace TCP forwarder
(:mod:`devtools.forward`; kube-apiserver itself stays on 127.0.0.1), and :meth:`LocalCluster.expose`
forwards any other loopback port the pods need. Pods find the API server through
:attr:`LocalCluster.in_cluster_env` (there is no kube-proxy, so the ``kubernetes`` Service's
ClusterIP routes nowhere). The API server admits pods with ServiceAccount tokens, and the
controller manager also runs the ServiceAccount, root-CA publisher, Deployment and ReplicaSet
controllers. The other tests run without all this: ServiceAccount admission rejects pods until a
namespace's ``default`` account exists, a race they need not have.

Run ``python -m devtools.localcluster up|down|status [--dir DIR] [--kwok] [--real-nodes N] [--in-cluster]``
for a long-lived cluster.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import ipaddress
import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from devtools.process import Process, free_port, wait_until
from devtools.realnodes import GATEWAY, RealNodes
from devtools.tools import REPO_ROOT, ToolMissingError, go_tool

ADMIN_TOKEN = "drop-admin-token"
DEFAULT_DIR = REPO_ROOT / ".local" / "cluster"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
_REQUEST_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
#: Audit one line per write to drop's kinds (tests count an object's writes at the server),
#: nothing else.
_AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
    resources:
      - group: drop.corewire.io
  - level: None
"""


def kubectl_binary() -> Path:
    """The kubectl built with the control plane (same version), else the one on PATH."""
    try:
        return go_tool("kubernetes", "kubectl")
    except ToolMissingError:
        found = shutil.which("kubectl")
        if not found:
            raise
        return Path(found)


#: The API server's serving certificate is valid for these addresses (and localhost).
SERVING_IPS = ("127.0.0.1", "10.0.0.1", GATEWAY)


def _serving_ips(cert: Path) -> set[str]:
    """The IP addresses ``cert`` (PEM) is valid for."""
    extensions = x509.load_pem_x509_certificate(cert.read_bytes()).extensions
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return set()
    return {str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)}


def _pki_current(pki: Path) -> bool:
    """Whether ``pki`` holds every key and a serving certificate for every one of
    :data:`SERVING_IPS` (a cluster directory from an older version is given new ones)."""
    cert = pki / "apiserver.crt"
    return (pki / "sa.key").exists() and cert.exists() and set(SERVING_IPS) <= _serving_ips(cert)


def _write_pki(pki: Path) -> None:
    """A CA, a serving certificate for :data:`SERVING_IPS` and localhost, and the service-account
    key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def pem_key(k: rsa.RSAPrivateKey) -> bytes:
        return k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "drop-local-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    srv_key = key()
    srv = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(srv_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.default.svc"),
                    *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVING_IPS),
                ]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    sa_key = key()
    (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (pki / "ca.key").write_bytes(pem_key(ca_key))
    (pki / "apiserver.crt").write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    (pki / "apiserver.key").write_bytes(pem_key(srv_key))
    (pki / "sa.key").write_bytes(pem_key(sa_key))
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@dataclass
class LocalCluster:
    """etcd + kube-apiserver (+ kube-controller-manager and kube-scheduler, + kwok on demand,
    + ``real_nodes`` real nodes registered with ``real_node_taints``; + with ``in_cluster``, what
    workloads on the real nodes need, see the module docstring)."""

    workdir: Path
    with_controller_manager: bool = True
    real_nodes: int = 0
    real_node_taints: Sequence[str] = ()
    users: Sequence[str] = ()
    """More users in ``system:masters``, each authenticated by a token equal to its name, so that
    a benchmark can tell their requests apart from everyone else's (audit log, see ``extra_args``)."""
    extra_args: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Flags appended to a process's command line, by process name (``kube-apiserver``,
    ``kube-controller-manager``, ``kwok``...); a later flag overrides an earlier one."""
    in_cluster: bool = False
    nodes: RealNodes | None = None
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    apiserver_port: int = field(default_factory=free_port)
    processes: dict[str, Process] = field(default_factory=dict)
    #: Forwarders from :data:`GATEWAY` to loopback, by port (``in_cluster`` mode).
    forwards: dict[int, Process] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def in_cluster_env(self) -> dict[str, str]:
        """What a pod on a real node needs to find the API server (``in_cluster`` mode): the
        environment ``rest.InClusterConfig`` and kubernetes-asyncio read, pointing at the gateway."""
        if not self.in_cluster:
            raise RuntimeError("pods reach the API server only in in_cluster mode")
        return {"KUBERNETES_SERVICE_HOST": GATEWAY, "KUBERNETES_SERVICE_PORT": str(self.apiserver_port)}

    @property
    def token(self) -> str:
        return ADMIN_TOKEN

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> None:
        """Start etcd and kube-apiserver (and the controller manager); return when /readyz is ok."""
        if self.in_cluster and not self.real_nodes:
            raise ValueError("in_cluster mode needs real nodes: their bridge carries the gateway")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not _pki_current(self.workdir / "pki"):
            _write_pki(self.workdir / "pki")
        tokens = [(ADMIN_TOKEN, "admin"), *((user, user) for user in self.users)]
        (self.workdir / "tokens.csv").write_text(
            "".join(f'{token},{name},uid-{name},"system:masters"\n' for token, name in tokens)
        )
        self._write_kubeconfig(self.kubeconfig, "admin", ADMIN_TOKEN)
        self._start_etcd(timeout)
        self.start_apiserver(timeout)
        if self.with_controller_manager:
            self._start_controller_manager()
            self._start_scheduler()
        if self.real_nodes:
            self.start_real_nodes(self.real_nodes, taints=self.real_node_taints)
        if self.in_cluster:
            self.expose(self.apiserver_port)

    def start_real_nodes(
        self, count: int, *, taints: Sequence[str] = (), timeout: float = 180.0
    ) -> RealNodes:
        """Start ``count`` real nodes (``real-node-<i>``); return once all are Ready and schedulable."""
        if self.nodes is None:
            self.nodes = RealNodes(
                self.workdir / "nodes", self.kubeconfig, count, taints=taints, gateway=self.in_cluster
            )
            self.nodes.start(self.kubectl, timeout=timeout)
        return self.nodes

    def stop(self) -> None:
        """Stop everything we started: the forwarders, then the real nodes (their pods are deleted
        through the API server while it still runs, and with the controller manager stopped
        first, no ReplicaSet replaces them), then the rest of the control plane, newest first."""
        for forward in self.forwards.values():
            forward.stop()
        if self.nodes is not None:
            if "kube-controller-manager" in self.processes:
                self.processes["kube-controller-manager"].stop()
            api = self.processes.get("kube-apiserver")
            self.nodes.stop(self.kubectl if api is not None and api.alive() else None)
            self.nodes = None
        for name in reversed(list(self.processes)):
            self.processes[name].stop()

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- pods reaching this machine (in_cluster mode) ------------------------------------------
    def expose(self, port: int, timeout: float = 10.0) -> str:
        """Forward :data:`GATEWAY`:``port`` to 127.0.0.1:``port`` and return ``GATEWAY:port``,
        the address pods on the real nodes use for a server that listens on loopback here."""
        if self.nodes is None or not self.nodes.gateway:
            raise RuntimeError("expose() needs the real nodes of an in_cluster cluster")
        address = f"{GATEWAY}:{port}"
        if port in self.forwards and self.forwards[port].alive():
            return address
        proc = Process(
            f"forward-{port}",
            [sys.executable, "-m", "devtools.forward", address, f"127.0.0.1:{port}"],
            self.workdir / "logs" / f"forward-{port}.log",
        )
        self.forwards[port] = proc
        proc.start()
        wait_until(lambda: _listening(proc, GATEWAY, port), timeout, f"the forwarder to {address}")
        return address

    # -- etcd ------------------------------------------------------------------------------------
    def _start_etcd(self, timeout: float) -> None:
        data = self.workdir / "etcd"
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        proc = Process(
            "etcd",
            [
                str(go_tool("etcd")),
                f"--data-dir={data}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            self.workdir / "logs" / "etcd.log",
        )
        self.processes["etcd"] = proc
        proc.start()
        self._wait_http(proc, f"{client}/health", timeout, lambda body: b'"health":"true"' in body)

    # -- kube-apiserver --------------------------------------------------------------------------
    @property
    def audit_log(self) -> Path:
        """The API server's audit log: one JSON line per write request to drop's kinds."""
        return self.workdir / "logs" / "audit.log"

    def _apiserver_args(self) -> list[str]:
        pki = self.workdir / "pki"
        # A name of its own: a caller may put its own policy in the workdir and pass it in
        # ``extra_args`` (the later flag wins), and must not find it overwritten here.
        policy = self.workdir / "drop-writes-audit-policy.yaml"
        policy.write_text(_AUDIT_POLICY)
        return [
            str(go_tool("kubernetes", "kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--secure-port={self.apiserver_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            *(() if self.in_cluster else ("--disable-admission-plugins=ServiceAccount",)),
            "--authorization-mode=RBAC",
            f"--service-account-issuer={self.url}/",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--token-auth-file={self.workdir / 'tokens.csv'}",
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            "--enable-priority-and-fairness=false",
            # ConfigMaps bypass the watch cache so that a watch from a compacted resourceVersion
            # answers 410 Gone at once, as it does on a long-running cluster; tests rely on it.
            "--watch-cache-sizes=configmaps#0",
            "--v=0",
            *self.extra_args.get("kube-apiserver", ()),
        ]

    def start_apiserver(self, timeout: float = 90.0) -> None:
        proc = Process("kube-apiserver", self._apiserver_args(), self.workdir / "logs" / "kube-apiserver.log")
        self.processes["kube-apiserver"] = proc
        proc.start()
        self._wait_http(proc, f"{self.url}/readyz", timeout, lambda body: body.strip() == b"ok")

    def apiserver_requests(self) -> list[tuple[dict[str, str], float]]:
        """The samples of the apiserver's ``apiserver_request_total`` counter: (labels, value).

        Tests and benchmarks count the operator's requests here, at the server, rather than trusting
        the operator's own metrics.
        """
        request = urllib.request.Request(
            f"{self.url}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10, context=self._ssl_context()) as response:
            text = response.read().decode()
        samples = []
        for line in text.splitlines():
            match = _REQUEST_SAMPLE.match(line)
            if match:
                samples.append((dict(_LABEL.findall(match["labels"])), float(match["value"])))
        return samples

    def audited_writes(self, resource: str, name: str, subresource: str = "") -> list[dict[str, Any]]:
        """The write requests the API server served on one of drop's objects (by plural, name and
        subresource: ``""`` for the object itself, ``"status"``), whatever they answered, oldest first.

        Read from the audit log (:data:`_AUDIT_POLICY`), so a test counts the writes of one object
        at the server, on a cluster other tests share.
        """
        if not self.audit_log.exists():
            return []
        found = []
        quoted = json.dumps(name)
        with self.audit_log.open() as lines:
            for line in lines:
                if quoted not in line or not line.endswith("\n"):
                    continue  # another object's, or a line still being written
                event = json.loads(line)
                ref = event.get("objectRef") or {}
                if (ref.get("resource"), ref.get("name"), ref.get("subresource", "")) == (
                    resource,
                    name,
                    subresource,
                ):
                    found.append(event)
        return found

    def compact_etcd(self) -> int:
        """Compact etcd up to its current revision (what the apiserver does every 5 minutes)."""

        def post(path: str, body: dict[str, object]) -> dict[str, Any]:
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.etcd_port}{path}",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                result: dict[str, Any] = json.loads(response.read())
                return result

        revision = int(post("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"])
        post("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def stop_apiserver(self) -> None:
        self.processes["kube-apiserver"].stop()

    def restart_apiserver(self, down_seconds: float = 0.0, timeout: float = 90.0) -> None:
        """Stop kube-apiserver, stay down ``down_seconds``, start it again on the same port."""
        self.stop_apiserver()
        if down_seconds > 0:
            time.sleep(down_seconds)  # the outage itself is what is being simulated
        self.start_apiserver(timeout)

    # -- kube-controller-manager ---------------------------------------------------------------
    # garbage collection (ownerReferences), namespace deletion, and node lifecycle: the latter
    # removes the node.kubernetes.io/not-ready taint admission puts on every new Node once it
    # reports Ready; without it nothing is ever scheduled on a kwok node. In in_cluster mode also
    # what Deployments and their pods' ServiceAccount tokens need: every namespace's `default`
    # account (ServiceAccount admission requires the pod's account to exist), the kube-root-ca.crt
    # ConfigMap (the CA in the token volume) and the Deployment and ReplicaSet controllers. Not
    # the legacy token-Secret controller: the kubelet mounts TokenRequest tokens.
    def _controllers(self) -> list[str]:
        controllers = ["garbagecollector", "namespace", "node-lifecycle-controller"]
        if self.in_cluster:
            controllers += ["serviceaccount", "root-ca-cert-publisher", "deployment", "replicaset"]
        return controllers

    def _start_controller_manager(self) -> None:
        proc = Process(
            "kube-controller-manager",
            [
                str(go_tool("kubernetes", "kube-controller-manager")),
                f"--kubeconfig={self.kubeconfig}",
                f"--controllers={','.join(self._controllers())}",
                f"--root-ca-file={self.ca_file}",
                "--node-monitor-period=1s",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                "--secure-port=0",
                "--concurrent-gc-syncs=5",
                "--v=0",
                *self.extra_args.get("kube-controller-manager", ()),
            ],
            self.workdir / "logs" / "kube-controller-manager.log",
        )
        self.processes["kube-controller-manager"] = proc
        proc.start()

    # -- kube-scheduler (pull pods are pinned by node affinity, so something must bind them) ------
    def _start_scheduler(self) -> None:
        config = self.workdir / "scheduler.yaml"
        config.write_text(
            "apiVersion: kubescheduler.config.k8s.io/v1\n"
            "kind: KubeSchedulerConfiguration\n"
            f"clientConnection: {{kubeconfig: {self.kubeconfig}, qps: 200, burst: 400}}\n"
            "leaderElection: {leaderElect: false}\n"
        )
        proc = Process(
            "kube-scheduler",
            [
                str(go_tool("kubernetes", "kube-scheduler")),
                f"--config={config}",
                "--secure-port=0",
                "--v=0",
                *self.extra_args.get("kube-scheduler", ()),
            ],
            self.workdir / "logs" / "kube-scheduler.log",
        )
        self.processes["kube-scheduler"] = proc
        proc.start()

    # -- kwok (simulated nodes and pod lifecycle) --------------------------------------------
    def start_kwok(self, stages: Sequence[Path] = ()) -> None:
        """Run kwok out of cluster for Nodes annotated ``kwok.x-k8s.io/node: fake``.

        ``stages`` are kwok Stage YAML files that replace kwok's default lifecycle (for example,
        to make pull pods succeed or fail deterministically).
        """
        if "kwok" in self.processes and self.processes["kwok"].alive():
            return
        args = [
            str(go_tool("kwok")),
            f"--kubeconfig={self.kubeconfig}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            "--cidr=10.0.0.0/24",
            "--node-ip=10.0.0.1",
            "--node-lease-duration-seconds=40",
        ]
        if stages:
            config = self.workdir / "kwok-config.yaml"
            config.write_text("\n---\n".join(Path(s).read_text().strip() for s in stages) + "\n")
            args.append(f"--config={config}")
        args += self.extra_args.get("kwok", ())
        proc = Process("kwok", args, self.workdir / "logs" / "kwok.log")
        self.processes["kwok"] = proc
        proc.start()
        if not proc.alive():
            raise RuntimeError(f"kwok exited at start:\n{proc.log_tail()}")

    def stop_kwok(self) -> None:
        if "kwok" in self.processes:
            self.processes["kwok"].stop()

    # -- helpers ---------------------------------------------------------------------------------
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster."""
        return subprocess.run(
            [str(kubectl_binary()), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def user_kubeconfig(self, user: str) -> Path:
        """A kubeconfig of one of :attr:`users` (written next to the admin's)."""
        if user not in self.users:
            raise ValueError(f"{user} is not a user of this cluster")
        path = self.workdir / f"kubeconfig-{user}"
        self._write_kubeconfig(path, user, user)
        return path

    def _write_kubeconfig(self, path: Path, user: str, token: str) -> None:
        ca = base64.b64encode((self.workdir / "pki" / "ca.crt").read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "drop-local", "cluster": {"server": self.url, "certificate-authority-data": ca}}
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "drop-local", "context": {"cluster": "drop-local", "user": user}}],
            "current-context": "drop-local",
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def _wait_http(self, proc: Process, url: str, timeout: float, ok: Callable[[bytes], bool]) -> None:
        def ready() -> bool:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited during start-up:\n{proc.log_tail()}")
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            try:
                ctx = self._ssl_context() if url.startswith("https") else None
                with urllib.request.urlopen(request, timeout=2, context=ctx) as response:
                    return bool(ok(response.read()))
            except (urllib.error.URLError, OSError):
                return False

        try:
            wait_until(ready, timeout, f"{proc.name} at {url}", interval=0.2)
        except TimeoutError as err:
            raise TimeoutError(f"{err}\n--- {proc.name} log ---\n{proc.log_tail()}") from None

    # -- detached mode for people (task cluster:up / cluster:down) ----------------------------
    def save_state(self) -> None:
        state = {
            "etcd_port": self.etcd_port,
            "etcd_peer_port": self.etcd_peer_port,
            "apiserver_port": self.apiserver_port,
            "pids": {name: p.pid for name, p in self.processes.items()},
            "in_cluster": self.in_cluster,
            "forwards": {str(port): p.pid for port, p in self.forwards.items()},
            "real_nodes": self.nodes.state() if self.nodes is not None else None,
        }
        (self.workdir / "state.json").write_text(json.dumps(state, indent=2))

    @classmethod
    def load_state(cls, workdir: Path) -> LocalCluster | None:
        path = workdir / "state.json"
        if not path.exists():
            return None
        state = json.loads(path.read_text())
        cluster = cls(
            workdir,
            etcd_port=state["etcd_port"],
            etcd_peer_port=state["etcd_peer_port"],
            apiserver_port=state["apiserver_port"],
            in_cluster=state.get("in_cluster", False),
        )
        for name, pid in state["pids"].items():
            cluster.processes[name] = Process(name, [], workdir / "logs" / f"{name}.log", pid=pid)
        for port, pid in state.get("forwards", {}).items():
            log = workdir / "logs" / f"forward-{port}.log"
            cluster.forwards[int(port)] = Process(f"forward-{port}", [], log, pid=pid)
        if state.get("real_nodes"):
            cluster.nodes = RealNodes.from_state(workdir / "nodes", cluster.kubeconfig, state["real_nodes"])
        return cluster

    def all_processes(self) -> list[Process]:
        """Every process of the cluster, real nodes and their registry included."""
        extra: list[Process] = []
        if self.nodes is not None:
            for node in self.nodes.nodes:
                extra += node.processes()
            if self.nodes.registry is not None:
                extra.append(self.nodes.registry.process)
        return [*self.processes.values(), *self.forwards.values(), *extra]


def _listening(proc: Process, host: str, port: int) -> bool:
    """Whether ``host:port`` accepts connections; raises if ``proc`` (its server) has exited."""
    if not proc.alive():
        raise RuntimeError(f"{proc.name} exited during start-up:\n{proc.log_tail()}")
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.localcluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help="state directory (default: .local/cluster)"
    )
    parser.add_argument("--kwok", action="store_true", help="also run kwok for simulated nodes")
    parser.add_argument("--stages", type=Path, action="append", default=[], help="kwok Stage YAML files")
    parser.add_argument(
        "--real-nodes", type=int, default=0, metavar="N", help="also run N real nodes (containerd + kubelet)"
    )
    parser.add_argument(
        "--in-cluster",
        action="store_true",
        help="let pods on the real nodes reach the API server and run Deployments (needs --real-nodes)",
    )
    args = parser.parse_args(argv)
    workdir: Path = args.dir.resolve()

    existing = LocalCluster.load_state(workdir)
    if args.command == "status":
        if existing is None:
            print("no local cluster")
            return 1
        for proc in existing.all_processes():
            print(f"{proc.name:<34} pid {proc.pid:<8} {'running' if proc.alive() else 'stopped'}")
        if existing.nodes is not None:
            for node in existing.nodes.nodes:
                print(f"real node {node.name}: containerd socket {node.socket}")
                print(f"  images: ctr --address {node.socket} --namespace k8s.io images ls")
        print(f"export KUBECONFIG={existing.kubeconfig}")
        return 0
    if args.command == "down":
        if existing is not None:
            existing.stop()
            (workdir / "state.json").unlink()
        print("local cluster stopped")
        return 0

    if existing is not None and all(p.alive() for p in existing.all_processes()):
        running = len(existing.nodes.nodes) if existing.nodes is not None else 0
        if (running, existing.in_cluster) != (args.real_nodes, args.in_cluster):
            print(
                f"a local cluster with {running} real node(s) (in-cluster: {existing.in_cluster}) is "
                f"already running; run `down` first to start one with {args.real_nodes}",
                file=sys.stderr,
            )
            return 1
        print(f"local cluster already running\nexport KUBECONFIG={existing.kubeconfig}")
        return 0
    if existing is not None:
        existing.stop()
    cluster = LocalCluster(workdir, real_nodes=args.real_nodes, in_cluster=args.in_cluster)
    started = time.monotonic()
    try:
        cluster.start()
        if args.kwok:
            cluster.start_kwok(args.stages)
    except BaseException:
        cluster.stop()
        raise
    cluster.save_state()
    print(f"local control plane ready in {time.monotonic() - started:.1f}s at {cluster.url}", file=sys.stderr)
    if cluster.nodes is not None:
        names = ", ".join(node.name for node in cluster.nodes.nodes)
        print(f"real nodes {names} Ready after {cluster.nodes.started_seconds:.1f}s", file=sys.stderr)
    if cluster.in_cluster:
        env = " ".join(f"{k}={v}" for k, v in cluster.in_cluster_env.items())
        print(f"pods reach the API server with {env}", file=sys.stderr)
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
