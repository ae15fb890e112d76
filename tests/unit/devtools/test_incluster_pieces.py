"""The pure parts of running workloads on the local control plane (``in_cluster`` mode): the pods'
address plan, the API server's flags and certificate, the e2e mode settings, and the image
build's cache key."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from devtools import image
from devtools.forward import parse_address
from devtools.localcluster import SERVING_IPS, LocalCluster, _pki_current, _serving_ips, _write_pki
from devtools.realnodes import GATEWAY, POD_NETWORK, pod_range
from devtools.tools import REPO_ROOT
from e2e.environment import LOCAL_MODES, Settings


def _addresses(index: int) -> set[ipaddress.IPv4Address]:
    r = pod_range(index)
    start, end = ipaddress.IPv4Address(r["rangeStart"]), ipaddress.IPv4Address(r["rangeEnd"])
    return {ipaddress.IPv4Address(i) for i in range(int(start), int(end) + 1)}


def test_each_node_allocates_from_its_own_slash_24_of_one_network() -> None:
    ranges = [_addresses(i) for i in range(4)]
    for i, addresses in enumerate(ranges):
        assert addresses <= set(ipaddress.IPv4Network(f"10.244.{i}.0/24"))
        assert all(a in POD_NETWORK for a in addresses)
        assert ipaddress.IPv4Address(GATEWAY) not in addresses
        for other in ranges[i + 1 :]:
            assert not addresses & other
    # The subnet every pod is configured with is the whole network: the gateway is on-link.
    assert {pod_range(i)["subnet"] for i in range(4)} == {str(POD_NETWORK)}
    assert ipaddress.IPv4Address(GATEWAY) in POD_NETWORK
    assert {pod_range(i)["gateway"] for i in range(4)} == {GATEWAY}


@pytest.mark.parametrize("index", [-1, 255])
def test_node_index_outside_the_network_is_refused(index: int) -> None:
    with pytest.raises(ValueError):
        pod_range(index)


def test_only_in_cluster_mode_admits_service_account_tokens_and_runs_deployments(tmp_path: Path) -> None:
    plain = LocalCluster(tmp_path)
    workloads = LocalCluster(tmp_path, real_nodes=1, in_cluster=True)
    assert "--disable-admission-plugins=ServiceAccount" in plain._apiserver_args()
    assert not [a for a in workloads._apiserver_args() if a.startswith("--disable-admission-plugins")]
    assert plain._controllers() == ["garbagecollector", "namespace", "node-lifecycle-controller"]
    extra = set(workloads._controllers()) - set(plain._controllers())
    assert extra == {"serviceaccount", "root-ca-cert-publisher", "deployment", "replicaset"}
    # The API server itself stays on loopback in both.
    assert "--bind-address=127.0.0.1" in workloads._apiserver_args()
    assert workloads.in_cluster_env == {
        "KUBERNETES_SERVICE_HOST": GATEWAY,
        "KUBERNETES_SERVICE_PORT": str(workloads.apiserver_port),
    }
    with pytest.raises(RuntimeError):
        _ = plain.in_cluster_env


def test_in_cluster_mode_needs_real_nodes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="real nodes"):
        LocalCluster(tmp_path, in_cluster=True).start()


def test_serving_certificate_covers_the_gateway_and_old_ones_are_replaced(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    assert not _pki_current(pki)
    _write_pki(pki)
    assert _pki_current(pki)
    assert _serving_ips(pki / "apiserver.crt") == set(SERVING_IPS) >= {"127.0.0.1", GATEWAY}
    # A cluster directory from before the gateway existed: its certificate lacks it.
    (pki / "apiserver.crt").write_bytes((pki / "ca.crt").read_bytes())
    assert not _pki_current(pki)


@pytest.mark.parametrize(
    ("text", "want"), [("10.244.0.1:6443", ("10.244.0.1", 6443)), ("localhost:1", ("localhost", 1))]
)
def test_forward_addresses(text: str, want: tuple[str, int]) -> None:
    assert parse_address(text) == want


@pytest.mark.parametrize("text", ["6443", ":6443", "host:", "host:0", "host:70000", "host:http"])
def test_forward_refuses_what_is_not_host_port(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


@pytest.mark.parametrize(
    ("env", "modes"),
    [
        ({}, LOCAL_MODES),
        ({"DROP_E2E_MODE": "incluster-local"}, ("incluster-local",)),
        ({"DROP_E2E_MODE": "local"}, ("local",)),
        ({"DROP_E2E_CLUSTER": "kind"}, ("cluster",)),
        ({"DROP_E2E_MODE": "cluster"}, ("cluster",)),
    ],
)
def test_e2e_modes(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], modes: tuple[str, ...]) -> None:
    for name in ("DROP_E2E_MODE", "DROP_E2E_CLUSTER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert settings.modes == modes
    assert bool(settings.cluster) == (modes == ("cluster",))


def test_unknown_e2e_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DROP_E2E_MODE", "kind")
    with pytest.raises(ValueError, match="DROP_E2E_MODE"):
        Settings.from_env()


def test_build_inputs_are_what_the_dockerfile_copies() -> None:
    inputs = {str(p.relative_to(REPO_ROOT)) for p in image.build_inputs()}
    assert "Dockerfile" in inputs
    assert not [p for p in inputs if "__pycache__" in p or p.endswith(".pyc")]
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (REPO_ROOT / "Dockerfile").read_text(), re.M)
    for source in (s for line in copied for s in line.split()):
        assert any(p == source or p.startswith(source.rstrip("/") + "/") for p in inputs), source
    # The key's notion of "ignored" is .dockerignore's: an allowlist with these two exclusions.
    patterns = [
        line
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line and line[0] not in "#!"
    ]
    assert patterns == ["*", "**/__pycache__", "**/*.pyc"]


def _tree(root: Path, source: str) -> Path:
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM scratch\nCOPY pkg ./pkg\n")
    (root / ".dockerignore").write_text("*\n!pkg/\n**/__pycache__\n")
    (root / "pkg" / "mod.py").write_text(source)
    (root / "notes.txt").write_text("not in the context")
    return root


def test_source_key_follows_the_build_context_only(tmp_path: Path) -> None:
    root = _tree(tmp_path, "x = 1\n")
    key = image.source_key(version="1.0.0", root=root)
    assert image.source_key(version="1.0.0", root=root) == key
    (root / "notes.txt").write_text("edited")
    (root / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    assert image.source_key(version="1.0.0", root=root) == key
    assert image.source_key(version="1.0.1", root=root) != key
    assert image.source_key(arch="arm64", version="1.0.0", root=root) != key
    (root / "pkg" / "mod.py").write_text("x = 2\n")
    assert image.source_key(version="1.0.0", root=root) != key
