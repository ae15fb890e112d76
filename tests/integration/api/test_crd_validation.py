"""The generated CRDs on a real kube-apiserver: the seed applies verbatim, defaults are filled in,
bad specs are refused with the rule's message, status written from the models is accepted.

Spec checks use server-side dry run: the API server runs defaulting, the OpenAPI schema and every
CEL rule, and nothing is stored, so these tests cannot collide with other tests' objects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.localcluster import LocalCluster
from drop_operator.api import (
    CachedImage,
    CachedImageStatus,
    Condition,
    DiscoveredImage,
    DiscoveryPolicy,
    DiscoveryPolicyStatus,
    DroppedCount,
    NodeFailure,
    RepositoryStatus,
    SourceImage,
    SourceStatus,
    utcnow,
)
from tests.infra.controlplane import unique_name

SEED = Path(__file__).resolve().parents[2] / "data" / "seed"
DIGEST = "sha256:" + "ab" * 32


def _dry_run(cluster: LocalCluster, doc: dict[str, Any]) -> tuple[int, str, dict[str, Any] | None]:
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(doc), check=False
    )
    out = json.loads(result.stdout) if result.returncode == 0 else None
    return result.returncode, result.stderr, out


def _policy(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "drop.corewire.io/v1alpha1",
        "kind": "DiscoveryPolicy",
        "metadata": {"name": unique_name("dp")},
        "spec": spec,
    }


def _prom(**extra: Any) -> dict[str, Any]:
    return {"type": "prometheus", "prometheus": {"endpoint": "http://127.0.0.1:9090", "query": "up"}, **extra}


def _reg(**extra: Any) -> dict[str, Any]:
    return {
        "type": "registry",
        "registry": {"url": "http://127.0.0.1:5000", "repositories": ["a/b"]},
        **extra,
    }


def _kind(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "drop.corewire.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": unique_name(kind.lower())},
        "spec": spec,
    }


def _contains(big: Any, small: Any) -> bool:
    """Every value of ``small`` is in ``big`` unchanged (defaults may add keys, never change ours)."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _contains(big[k], v) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(big) == len(small) and all(map(_contains, big, small))
    return bool(big == small)


@pytest.mark.parametrize("name", ["popular-build-images.yaml", "gitlab-helpers.yaml"])
def test_seed_applies_verbatim_and_keeps_its_meaning(
    control_plane: LocalCluster, crds: Path, name: str
) -> None:
    control_plane.kubectl("create", "namespace", "drop-system", check=False)
    path = SEED / name
    result = control_plane.kubectl("apply", "--dry-run=server", "-o", "json", "-f", str(path))
    returned = json.loads(result.stdout)
    items = returned["items"] if returned.get("kind") == "List" else [returned]
    sent = list(yaml.safe_load_all(path.read_text()))
    policies = [i for i in items if i["kind"] == "DiscoveryPolicy"]
    assert len(policies) == 1
    policy_sent = next(d for d in sent if d["kind"] == "DiscoveryPolicy")
    assert _contains(policies[0]["spec"], policy_sent["spec"]), policies[0]["spec"]
    # What the server stored (with its defaults) parses into the same meaning the models give it.
    assert DiscoveryPolicy.from_obj(policies[0]).spec == DiscoveryPolicy.from_obj(policy_sent).spec


def test_defaults_are_applied_by_the_server(control_plane: LocalCluster, crds: Path) -> None:
    code, err, out = _dry_run(control_plane, _policy({"sources": [_prom(), _reg()]}))
    assert code == 0, err
    assert out is not None
    spec = out["spec"]
    assert (spec["interval"], spec["topX"]) == ("1h", 50)
    assert spec["sources"][0]["weight"] == 1
    assert spec["sources"][0]["prometheus"] == {
        "endpoint": "http://127.0.0.1:9090",
        "query": "up",
        "queryType": "instant",
        "lookback": "1h",
        "step": "5m",
        "timeout": "30s",
    }
    assert spec["sources"][1]["registry"]["topX"] == 10
    assert spec["sources"][1]["registry"]["maxScan"] == 5000

    without_spec = {k: v for k, v in _kind("PullPolicy", {}).items() if k != "spec"}
    code, err, out = _dry_run(control_plane, without_spec)
    assert code == 0, err
    assert out is not None
    assert out["spec"] == {
        "maxConcurrentNodes": 2,
        "maxConcurrentPulls": 5,
        "maxPullsPerNode": 1,
        "minDelayBetweenPulls": "2s",
        "failureBackoff": {"initial": "30s", "max": "30m", "jitter": 0.2},
        "pullTimeout": "10m",
    }

    code, err, out = _dry_run(control_plane, _kind("CachedImageSet", {}))
    assert code == 0, err
    assert out is not None
    assert out["spec"]["imagePullPolicy"] == "IfNotPresent"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            _policy({"sources": [{"type": "prometheus", "registry": _reg()["registry"]}]}),
            "type prometheus requires the prometheus block",
        ),
        (
            _policy({"sources": [{**_reg(), "prometheus": _prom()["prometheus"]}]}),
            "the prometheus block is only allowed when type is prometheus",
        ),
        (_policy({"sources": [_prom(name="a"), _reg(name="a")]}), "source names must be unique"),
        (_policy({"sources": [_prom(name="registry-3")]}), "reserved for unnamed sources"),
        (_policy({"sources": [_prom()], "interval": "29s"}), "interval must be between 30s and 168h"),
        (_policy({"sources": [_prom()], "interval": "200h"}), "interval must be between 30s and 168h"),
        (_policy({"sources": [_prom()], "interval": "1d"}), "spec.interval"),
        (_policy({"sources": [_prom()], "topX": 0}), "spec.topX"),
        (_policy({"sources": [_prom()], "topX": 1001}), "spec.topX"),
        (_policy({"sources": []}), "spec.sources"),
        (_policy({"sources": [{"type": "influx"}]}), "Unsupported value"),
        (
            _kind("CachedImage", {"image": "nginx", "tag": "1.25", "digest": DIGEST}),
            "tag and digest are mutually exclusive",
        ),
        (_kind("CachedImage", {"image": "nginx:1.25"}), "spec.image"),
        # Only the digests references may carry and the kubelet accepts (sha256, sha512).
        (_kind("CachedImage", {"image": "nginx", "digest": "md5:" + "0" * 32}), "spec.digest"),
        (_kind("CachedImage", {"image": "nginx", "digest": "sha256:" + "0" * 32}), "spec.digest"),
        (_kind("CachedImage", {"tag": "1"}), "spec.image"),
        (
            _kind("PullPolicy", {"failureBackoff": {"initial": "5m", "max": "1m"}}),
            "failureBackoff.max must be >= failureBackoff.initial",
        ),
        (
            _kind("PullPolicy", {"failureBackoff": {"initial": "1h"}}),
            "failureBackoff.max must be >= failureBackoff",
        ),
        (_kind("PullPolicy", {"repullInterval": "10s"}), "repullInterval must be at least 1m"),
        (_kind("PullPolicy", {"pullTimeout": "0"}), "pullTimeout must be greater than 0"),
        (_kind("PullPolicy", {"failureBackoff": {"max": "30 minutes"}}), "spec.failureBackoff.max"),
        (_kind("CachedImageSet", {"imagePullPolicy": "Never"}), "spec.imagePullPolicy"),
    ],
)
def test_invalid_specs_are_refused_with_a_clear_message(
    control_plane: LocalCluster, crds: Path, doc: dict[str, Any], message: str
) -> None:
    code, err, _ = _dry_run(control_plane, doc)
    assert code != 0, f"accepted: {doc}"
    assert message in err, err
    # A malformed duration is reported by its pattern alone, not also as a CEL evaluation error.
    assert "type conversion error" not in err, err


@pytest.mark.parametrize(
    "doc",
    [
        _policy({"sources": [_prom(name="mimir", weight=0.5), _reg(name="gitlab")], "interval": "30s"}),
        _policy({"sources": [_prom()], "interval": "168h", "topX": 1000}),
        _kind("CachedImage", {"image": "localhost:5000/a/b", "digest": DIGEST}),
        _kind("CachedImage", {"image": "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper"}),
        _kind("PullPolicy", {"failureBackoff": {"initial": "1m", "max": "1m"}, "repullInterval": "24h"}),
        _kind(
            "CachedImageSet",
            {
                "discoveryPolicyRef": {"name": "p"},
                "images": ["nginx:1.25"],
                "tolerations": [{"operator": "Exists"}],
                "nodeSelector": {"pool": "build"},
            },
        ),
    ],
)
def test_valid_specs_are_accepted(control_plane: LocalCluster, crds: Path, doc: dict[str, Any]) -> None:
    code, err, _ = _dry_run(control_plane, doc)
    assert code == 0, err


def test_status_written_from_the_models_is_accepted_and_printed(
    control_plane: LocalCluster, crds: Path
) -> None:
    policy = _policy({"sources": [_prom(name="mimir")]})
    name = policy["metadata"]["name"]
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(policy))
    try:
        now = utcnow()
        status = DiscoveryPolicyStatus(
            observed_generation=1,
            last_sync_time=now,
            image_count=1,
            discovered_images=[
                DiscoveredImage(image="docker.io/library/nginx:1.25", score=3.0, sources=["mimir"])
            ],
            sources=[
                SourceStatus(
                    name="mimir",
                    type="prometheus",
                    healthy=True,
                    last_sync_time=now,
                    last_success_time=now,
                    images_found=1,
                    dropped=[DroppedCount(reason="MissingImageLabel", count=2)],
                    images=[SourceImage(image="docker.io/library/nginx:1.25", score=3.0)],
                ),
                SourceStatus(  # a registry source of which one repository failed
                    name="helpers",
                    type="registry",
                    healthy=False,
                    last_sync_time=now,
                    last_success_time=now,
                    reason="NotFound",
                    last_error="1 of 2 failing, the others answered: ci/tool: NotFound: HTTP 404",
                    failing_repositories=[
                        RepositoryStatus(
                            name="ci/tool", reason="NotFound", last_error="HTTP 404", last_success_time=now
                        )
                    ],
                    images=[
                        SourceImage(image="registry.example.com/ci/app:1.0.0", score=1.0, repository="ci/app")
                    ],
                ),
            ],
            conditions=[
                Condition(type="Ready", status="True", reason="Synced", observed_generation=1),
                Condition(type="SourcesHealthy", status="True", reason="AllSourcesHealthy"),
            ],
        )
        control_plane.kubectl(
            "patch",
            "discoverypolicies.drop.corewire.io",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status.to_json()}),
        )
        stored = json.loads(control_plane.kubectl("get", "dp", name, "-o", "json").stdout)
        assert DiscoveryPolicy.from_obj(stored).status == status
        table = control_plane.kubectl("get", "dp", name).stdout.splitlines()
        assert table[0].split() == ["NAME", "IMAGES", "READY", "SOURCES", "HEALTHY", "LAST", "SYNC", "AGE"]
        assert table[1].split()[:4] == [name, "1", "True", "True"]
    finally:
        control_plane.kubectl("delete", "dp", name, "--wait=false")


def test_cached_image_status_and_columns(control_plane: LocalCluster, crds: Path) -> None:
    doc = _kind("CachedImage", {"image": "docker.io/library/nginx", "tag": "1.25"})
    name = doc["metadata"]["name"]
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(doc))
    try:
        status = CachedImageStatus(
            observed_generation=1,
            target_nodes=3,
            cached_nodes=2,
            failed_nodes=1,
            recent_failures=[NodeFailure(node="n1", reason="ErrImagePull", message="boom", time=utcnow())],
            conditions=[Condition(type="Ready", status="False", reason="Progressing")],
        )
        control_plane.kubectl(
            "patch",
            "ci",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps({"status": status.to_json()}),
        )
        stored = CachedImage.from_obj(
            json.loads(control_plane.kubectl("get", "ci", name, "-o", "json").stdout)
        )
        assert stored.status == status
        assert stored.reference == "docker.io/library/nginx:1.25"
        row = control_plane.kubectl("get", "ci", name, "--no-headers").stdout.split()
        assert row[:7] == [name, "docker.io/library/nginx", "1.25", "3", "2", "1", "False"]
        # Too many recent failures: the bound is enforced by the server too.
        too_many = {"status": {"recentFailures": [status.to_json()["recentFailures"][0]] * 11}}
        result = control_plane.kubectl(
            "patch",
            "ci",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(too_many),
            check=False,
        )
        assert result.returncode != 0
        assert "recentFailures" in result.stderr
    finally:
        control_plane.kubectl("delete", "ci", name, "--wait=false")
