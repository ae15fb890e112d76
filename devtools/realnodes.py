"""Real nodes for the local control plane: one containerd and one kubelet per node, so a pull
really lands in a node's image store.

Layout of one group of nodes (all under the cluster's directory, except the sockets):

* a **node registry** (distribution 2.8 from Debian, plain HTTP on 127.0.0.1) serving the
  sandbox image (``hack/pause.c``) and the operator's helper image (``hack/noop.c`` at the
  Dockerfile's path), both built here by :mod:`devtools.ociimage`;
* a **hosts directory** (containerd's ``registry.config_path``): one ``hosts.toml`` per registry
  host the nodes may pull from. Loopback registries are reached over plain HTTP, and a public host
  name can be *mirrored* to a local registry (``server`` is the only endpoint, so nothing is ever
  fetched from outside this machine);
* one **CNI bridge** shared by the nodes: one ``/16`` (:data:`POD_NETWORK`) with a ``/24`` range
  per node, host-local IPAM, no gateway, no masquerading: pods get addresses and no route out.
  With ``gateway``, this machine also takes :data:`GATEWAY` on the bridge before any pod starts:
  pods reach it on-link (and nothing beyond it), and the node's own kubelet reaches the pods'
  addresses for probes. What listens there is chosen by the caller
  (:meth:`devtools.localcluster.LocalCluster.expose`);
* per node: containerd (own ``root``, ``state``, socket, runc root, network namespaces under its
  state dir) and a kubelet (own ports, root dir, pod-log dir, hostname ``real-node-<i>``).

Stopping removes what the nodes made: pods are deleted through the API so the kubelet tears down
their sandboxes (CNI DEL), leftover containers are killed through containerd, then the kubelet
and containerd stop by PID, every mount left under the node directories is unmounted, and the
bridge is deleted (with the gateway address on it). Facts and traps behind the configuration (``restrict_oom_score_adj``, cgroup
v1, socket path length) are measured in the project's test-infrastructure notes.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.ociimage import File, build_image, layer
from devtools.process import Process, free_port, wait_until
from devtools.registry import RegistryServer, start_registry
from devtools.tools import REPO_ROOT, go_tool, system_tool

__all__ = [
    "GATEWAY",
    "HELPER_NOOP_PATH",
    "POD_NETWORK",
    "REAL_NODE_LABEL",
    "RealNode",
    "RealNodes",
    "static_binary",
]

#: Where the Dockerfile puts drop-noop; pull pods run ``<this> --install``.
HELPER_NOOP_PATH = "/usr/local/bin/drop-noop"
#: Label every real node carries (kwok nodes carry ``type: kwok``).
REAL_NODE_LABEL = ("type", "real")
CNI_BIN_DIR = Path("/usr/lib/cni")
#: The pods' addresses: one network on the shared bridge, ``10.244.<node index>.0/24`` per node.
POD_NETWORK = ipaddress.IPv4Network("10.244.0.0/16")
#: This machine's address on the bridge when the nodes run with ``gateway``: the one address of
#: the host a pod can reach (on-link; pods have no other route).
GATEWAY = "10.244.0.1"
_STATIC_FLAGS = ("-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror")  # as the Dockerfile builds drop-noop
_RUN_ROOT = Path("/run")
KubectlRunner = Callable[..., subprocess.CompletedProcess[str]]
"""``kubectl(*args, check=...)`` against the cluster the nodes join."""  # unix sockets must stay under 108 bytes: keep them out of deep tmp dirs


def static_binary(source: Path, out: Path) -> Path:
    """Compile a C file into a static, stripped binary (as the Dockerfile does); cached by content."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    target = out / f"{source.stem}-{digest}"
    if not target.exists():
        out.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        subprocess.run(
            [str(system_tool("gcc", "gcc")), *_STATIC_FLAGS, "-o", str(tmp), str(source)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        tmp.rename(target)
    return target


def _containerd_config(node: RealNode, sandbox_image: str, hosts_dir: Path) -> str:
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{node.dir / "containerd-root"}"
state = "{node.run_dir / "state"}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{node.socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{node.dir / "containerd-opt"}"

[{cri}]
  sandbox_image = "{sandbox_image}"
  # Sandboxes ask for oom_score_adj -998; this VM refuses negative values (runc then fails with
  # "can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_port = "0"
  disable_apparmor = true

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  Root = "{node.run_dir / "runc"}"

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{node.dir / "cni"}"

[{cri}.registry]
  config_path = "{hosts_dir}"
"""


def _kubelet_config(node: RealNode) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": node.kubelet_port,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": node.healthz_port,
        "readOnlyPort": 0,
        # Loopback only, and nothing but the local apiserver talks to it.
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{node.socket}",
        # cgroup v1 VM with several kubelets on one kernel: no QoS hierarchy, no allocatable cgroups.
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "failCgroupV1": False,
        "failSwapOn": False,
        "makeIPTablesUtilChains": False,
        "podLogsDir": str(node.dir / "pod-logs"),
        "volumePluginDir": str(node.dir / "volume-plugins"),
        # Image GC stays off: tests remove images themselves, as GC would, when they mean to.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "50Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "nodeStatusUpdateFrequency": "5s",
        "nodeStatusReportFrequency": "10s",
    }


def pod_range(index: int) -> dict[str, str]:
    """Node ``index``'s host-local range: its own ``/24`` for allocation, the whole
    :data:`POD_NETWORK` as the pods' subnet, so that every pod has :data:`GATEWAY` on-link."""
    if not 0 <= index < 255:
        raise ValueError(f"node index {index} outside 0..254")
    base = POD_NETWORK.network_address + (index << 8)
    return {
        "subnet": str(POD_NETWORK),
        "rangeStart": str(base + 2),
        "rangeEnd": str(base + 254),
        "gateway": GATEWAY,
    }


def _cni_config(node: RealNode, bridge: str) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": f"drop-{node.name}",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": False,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[pod_range(node.index)]],
                    "dataDir": str(node.dir / "cni-ipam"),
                },
            },
            {"type": "loopback"},
        ],
    }


@dataclass
class RealNode:
    """One node: a containerd and a kubelet. ``socket`` is containerd's CRI endpoint."""

    index: int
    name: str
    dir: Path
    run_dir: Path
    kubelet_port: int = field(default_factory=free_port)
    healthz_port: int = field(default_factory=free_port)
    containerd: Process | None = None
    kubelet: Process | None = None

    @property
    def socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    def processes(self) -> list[Process]:
        return [p for p in (self.kubelet, self.containerd) if p is not None]

    def ctr(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``ctr`` against this node's containerd, in the CRI namespace ``k8s.io``."""
        ctr = system_tool("ctr", "containerd")
        return subprocess.run(
            [str(ctr), f"--address={self.socket}", "--namespace=k8s.io", *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def images(self) -> dict[str, str]:
        """The node's image store: every image name (tags and digests) -> its target digest."""
        out = self.ctr("images", "ls").stdout.splitlines()
        images: dict[str, str] = {}
        for line in out[1:]:
            fields = line.split()
            if len(fields) >= 3:
                images[fields[0]] = fields[2]
        return images

    def remove_image(self, reference: str) -> None:
        """Remove an image from the store, with every name that points at the same content,
        as kubelet image garbage collection does."""
        images = self.images()
        target = images.get(reference)
        names = [name for name, digest in images.items() if digest == target] if target else [reference]
        self.ctr("images", "rm", "--sync", *names, check=False)

    def containers(self) -> list[str]:
        return self.ctr("containers", "ls", "-q", check=False).stdout.split()

    def running_tasks(self) -> list[str]:
        """Containers with a running process (sandboxes included)."""
        rows = self.ctr("tasks", "ls", check=False).stdout.splitlines()[1:]
        return [row.split()[0] for row in rows if row.split()[2:3] == ["RUNNING"]]

    def state(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "dir": str(self.dir),
            "run_dir": str(self.run_dir),
            "kubelet_port": self.kubelet_port,
            "healthz_port": self.healthz_port,
            "pids": {p.name: p.pid for p in self.processes()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RealNode:
        node = cls(
            index=state["index"],
            name=state["name"],
            dir=Path(state["dir"]),
            run_dir=Path(state["run_dir"]),
            kubelet_port=state["kubelet_port"],
            healthz_port=state["healthz_port"],
        )
        logs = node.dir / "logs"
        for name, pid in state.get("pids", {}).items():
            proc = Process(name, [], logs / f"{name.split('@')[0]}.log", pid=pid)
            if name.startswith("containerd"):
                node.containerd = proc
            else:
                node.kubelet = proc
        return node


@dataclass
class RealNodes:
    """A group of real nodes joined to one control plane (see the module docstring)."""

    workdir: Path
    kubeconfig: Path
    count: int
    taints: Sequence[str] = ()
    #: Put :data:`GATEWAY` on the bridge (see the module docstring).
    gateway: bool = False
    nodes: list[RealNode] = field(default_factory=list)
    registry: RegistryServer | None = None
    sandbox_image: str = ""
    helper_image: str = ""
    started_seconds: float = 0.0

    @property
    def bridge(self) -> str:
        """The CNI bridge name: per cluster directory, within the 15 bytes Linux allows."""
        return "drop" + hashlib.sha256(str(self.workdir).encode()).hexdigest()[:8]

    @property
    def run_root(self) -> Path:
        return _RUN_ROOT / f"drop-{hashlib.sha256(str(self.workdir).encode()).hexdigest()[:10]}"

    @property
    def hosts_dir(self) -> Path:
        return self.workdir / "certs.d"

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, kubectl: KubectlRunner, timeout: float = 120.0) -> None:
        """Start the node registry, push the node images, start every node; return once every node
        is Ready and schedulable (the not-ready taint removed by the node lifecycle controller)."""
        started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.gateway:
            _add_gateway(self.bridge)
        self.registry = start_registry(self.workdir / "registry", version=2)
        self.trust(self.registry.host)
        self._push_node_images()
        self.nodes = [
            RealNode(i, f"real-node-{i}", self.workdir / f"real-node-{i}", self.run_root / f"n{i}")
            for i in range(self.count)
        ]
        for node in self.nodes:
            self._start_containerd(node)
        for node in self.nodes:
            self._start_kubelet(node)
        wait_until(
            lambda: self._all_ready(kubectl), timeout, f"{self.count} real node(s) Ready", interval=0.5
        )
        self.started_seconds = time.monotonic() - started

    def stop(self, kubectl: KubectlRunner | None = None) -> None:
        """Tear everything down (see the module docstring); safe to call twice. Without
        ``kubectl`` (the API server is gone) containers are killed through containerd only."""
        if kubectl is not None and self.nodes:
            self._delete_pods(kubectl)
        for node in self.nodes:
            if node.kubelet is not None:
                node.kubelet.stop()
            self._kill_containers(node)
            if node.containerd is not None:
                node.containerd.stop()
        for node in self.nodes:
            _unmount_under(node.dir)
            _unmount_under(node.run_dir)
        _delete_link(self.bridge)
        shutil.rmtree(self.run_root, ignore_errors=True)
        _remove_leftovers([node.dir for node in self.nodes])
        if self.registry is not None:
            self.registry.stop()

    def stop_kubelet(self, node: RealNode) -> None:
        """Stop one node's kubelet (its containers keep running, as on a node that lost its
        kubelet); the node goes NotReady once the node lifecycle controller notices."""
        if node.kubelet is not None:
            node.kubelet.stop()

    def start_kubelet(self, node: RealNode) -> None:
        """Start a stopped node's kubelet again, with the same configuration and identity."""
        self._start_kubelet(node)

    # -- registries ------------------------------------------------------------------------------
    def trust(self, host: str, *, server: str | None = None) -> None:
        """Let the nodes pull from ``host``: plain HTTP for a loopback ``host``, or, with
        ``server`` (``http://127.0.0.1:<port>``), ``host``'s images are served by that local
        registry and by nothing else (a mirror with no fallback to the real host)."""
        endpoint = server or f"http://{host}"
        directory = self.hosts_dir / host  # containerd looks up "<config_path>/<host[:port]>"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hosts.toml").write_text(
            f'server = "{endpoint}"\n\n[host."{endpoint}"]\n  capabilities = ["pull", "resolve"]\n'
        )

    def mirror(self, hosts: Iterable[str], registry: RegistryServer) -> None:
        """Serve every image of ``hosts`` (public registry names) from ``registry``."""
        for host in hosts:
            self.trust(host, server=registry.url)

    def _push_node_images(self) -> None:
        assert self.registry is not None
        binaries = self.workdir / "bin"
        pause = static_binary(REPO_ROOT / "hack" / "pause.c", binaries)
        noop = static_binary(REPO_ROOT / "hack" / "noop.c", binaries)
        sandbox = build_image([layer({"pause": File(pause.read_bytes(), 0o755)})], entrypoint=["/pause"])
        helper = build_image(
            [layer({HELPER_NOOP_PATH: File(noop.read_bytes(), 0o755)})],
            entrypoint=[HELPER_NOOP_PATH],
            user="65532:65532",
        )
        # Tags name the content, so a node never runs a stale helper after hack/*.c changes.
        sandbox_tag = sandbox.digest.split(":")[1][:12]
        helper_tag = helper.digest.split(":")[1][:12]
        self.registry.push("drop/pause", [sandbox_tag], sandbox)
        self.registry.push("drop/operator-helper", [helper_tag], helper)
        self.sandbox_image = f"{self.registry.host}/drop/pause:{sandbox_tag}"
        self.helper_image = f"{self.registry.host}/drop/operator-helper:{helper_tag}"

    # -- nodes -----------------------------------------------------------------------------------
    def _start_containerd(self, node: RealNode) -> None:
        for sub in ("cni", "logs", "containerd-root"):
            (node.dir / sub).mkdir(parents=True, exist_ok=True)
        node.run_dir.mkdir(parents=True, exist_ok=True)
        config = node.dir / "containerd.toml"
        config.write_text(_containerd_config(node, self.sandbox_image, self.hosts_dir))
        (node.dir / "cni" / "10-drop.conflist").write_text(
            json.dumps(_cni_config(node, self.bridge), indent=2)
        )
        proc = Process(
            f"containerd@{node.name}",
            [str(system_tool("containerd", "containerd")), f"--config={config}", "--log-level=warn"],
            node.dir / "logs" / "containerd.log",
        )
        node.containerd = proc
        proc.start()
        wait_until(lambda: _alive_or_raise(proc) and node.socket.exists(), 30, f"containerd of {node.name}")

    def _start_kubelet(self, node: RealNode) -> None:
        config = node.dir / "kubelet.yaml"
        config.write_text(json.dumps(_kubelet_config(node), indent=2))
        args = [
            str(go_tool("kubernetes", "kubelet")),
            f"--config={config}",
            f"--kubeconfig={self.kubeconfig}",
            f"--root-dir={node.dir / 'kubelet'}",
            f"--cert-dir={node.dir / 'kubelet-pki'}",
            f"--hostname-override={node.name}",
            "--node-ip=127.0.0.1",
            f"--node-labels={REAL_NODE_LABEL[0]}={REAL_NODE_LABEL[1]}",
            "--v=0",
        ]
        if self.taints:
            args.append(f"--register-with-taints={','.join(self.taints)}")
        proc = Process(f"kubelet@{node.name}", args, node.dir / "logs" / "kubelet.log")
        node.kubelet = proc
        proc.start()

    def _all_ready(self, kubectl: KubectlRunner) -> bool:
        for node in self.nodes:
            for proc in node.processes():
                _alive_or_raise(proc)
        listed = kubectl("get", "nodes", "-l", "=".join(REAL_NODE_LABEL), "-o", "json", check=False)
        if listed.returncode != 0:
            return False
        nodes = {n["metadata"]["name"]: n for n in json.loads(listed.stdout)["items"]}
        wanted = {t.split("=")[0].split(":")[0] for t in self.taints}
        for node in self.nodes:
            obj = nodes.get(node.name)
            if obj is None:
                return False
            conditions = {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions", [])}
            taints = {t["key"] for t in obj["spec"].get("taints") or []} - wanted
            if conditions.get("Ready") != "True" or taints:
                return False
        return True

    # -- teardown ----------------------------------------------------------------------------------
    def _delete_pods(self, kubectl: KubectlRunner) -> None:
        """Delete every pod bound to a real node and wait (bounded) until the kubelet has stopped
        their sandboxes (which also runs the CNI teardown of their network namespaces)."""
        names = {n.name for n in self.nodes}
        listed = kubectl("get", "pods", "-A", "-o", "json", check=False)
        if listed.returncode != 0:
            return
        for pod in json.loads(listed.stdout).get("items", []):
            if pod["spec"].get("nodeName") in names:
                meta = pod["metadata"]
                kubectl(
                    "delete", "pod", "-n", meta["namespace"], meta["name"],
                    "--grace-period=0", "--force", "--wait=false", check=False,
                )  # fmt: skip
        with contextlib.suppress(TimeoutError):  # _kill_containers removes what is left
            wait_until(lambda: all(not n.running_tasks() for n in self.nodes), 45, "pod sandboxes stopped")

    def _kill_containers(self, node: RealNode) -> None:
        if node.containerd is None or not node.containerd.alive():
            return
        for task in node.ctr("tasks", "ls", "-q", check=False).stdout.split():
            node.ctr("tasks", "kill", "--signal=SIGKILL", task, check=False)
        for task in node.ctr("tasks", "ls", "-q", check=False).stdout.split():
            node.ctr("tasks", "delete", "--force", task, check=False)
        for container in node.containers():
            node.ctr("containers", "delete", container, check=False)

    # -- persistence (``python -m devtools.localcluster up|down`` run in separate processes) ------
    def state(self) -> dict[str, Any]:
        assert self.registry is not None
        return {
            "count": self.count,
            "gateway": self.gateway,
            "nodes": [n.state() for n in self.nodes],
            "registry": {"host": self.registry.host, "pid": self.registry.pid},
            "sandbox_image": self.sandbox_image,
            "helper_image": self.helper_image,
        }

    @classmethod
    def from_state(cls, workdir: Path, kubeconfig: Path, state: Mapping[str, Any]) -> RealNodes:
        group = cls(workdir, kubeconfig, state["count"], gateway=state.get("gateway", False))
        group.nodes = [RealNode.from_state(n) for n in state["nodes"]]
        group.sandbox_image = state["sandbox_image"]
        group.helper_image = state["helper_image"]
        registry = state["registry"]
        group.registry = RegistryServer(
            url=f"http://{registry['host']}",
            host=registry["host"],
            process=Process("registry-v2", [], workdir / "registry" / "registry.log", pid=registry["pid"]),
            storage=workdir / "registry" / "storage",
            auth="none",
            version=2,
        )
        return group


def _alive_or_raise(proc: Process) -> bool:
    if not proc.alive():
        raise RuntimeError(f"{proc.name} exited during start-up:\n{proc.log_tail()}")
    return True


def _unmount_under(directory: Path) -> None:
    """Unmount every mount point below ``directory``, deepest first (kubelet volumes, netns,
    overlay rootfs of containers that outlived containerd)."""
    prefix = str(directory.resolve()) + "/"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    points = [line.split()[4] for line in lines]
    for point in sorted({p for p in points if p.startswith(prefix)}, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30, check=False)


def _add_gateway(bridge: str) -> None:
    """Create ``bridge`` (the CNI plugin adopts an existing one) with :data:`GATEWAY` on it.

    Refuses when the address is on another device already: a second cluster with a gateway would
    make the pods' network ambiguous (stop the other one first)."""
    ip = system_tool("ip", "iproute2")
    held = subprocess.run(
        [str(ip), "-o", "-4", "addr", "show", "to", f"{GATEWAY}/32"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.split()  # fmt: skip
    if held and held[1] != bridge:
        raise RuntimeError(
            f"{GATEWAY} is already on {held[1]}: another local cluster runs with pods that reach "
            "this machine; stop it first"
        )
    if not Path(f"/sys/class/net/{bridge}").exists():
        subprocess.run([str(ip), "link", "add", "name", bridge, "type", "bridge"], check=True, timeout=30)
    if not held:
        address = f"{GATEWAY}/{POD_NETWORK.prefixlen}"
        subprocess.run([str(ip), "addr", "add", address, "dev", bridge], check=True, timeout=30)
    subprocess.run([str(ip), "link", "set", bridge, "up"], check=True, timeout=30)


def _delete_link(name: str) -> None:
    """Delete a network device if it exists (the bridge the CNI plugin created)."""
    if Path(f"/sys/class/net/{name}").exists():
        subprocess.run(["ip", "link", "delete", name], capture_output=True, timeout=30, check=False)


# Paths the kubelet and the containerd shim write outside the directories they are given.
_KUBELET_LOG_LINKS = Path("/var/log/containers")
_SHIM_SOCKET_DIRS = (Path("/run/containerd/s"), Path("/run/containerd"))


def _remove_leftovers(node_dirs: Sequence[Path]) -> None:
    """Remove the kubelet's log symlinks into our pod-log dirs, then the shims' socket directory
    and the kubelet's link directory once empty (``rmdir`` only: what another containerd or kubelet
    keeps there is never touched)."""
    roots = tuple(str(d.resolve()) + "/" for d in node_dirs)
    if _KUBELET_LOG_LINKS.is_dir():
        for link in _KUBELET_LOG_LINKS.iterdir():
            if link.is_symlink() and str(link.readlink()).startswith(roots):
                link.unlink(missing_ok=True)
    for directory in (*_SHIM_SOCKET_DIRS, _KUBELET_LOG_LINKS):
        with contextlib.suppress(OSError):
            directory.rmdir()
