"""The kinds' models: the seed documents parse verbatim with their meaning, defaults, and the
validators that mirror the CRDs' CEL rules (so previews reject what the API server would)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from drop_operator.api import (
    DEFAULT_PULL_POLICY,
    KINDS,
    CachedImageSet,
    CachedImageSpec,
    DiscoveryPolicy,
    DiscoveryPolicySpec,
    PullPolicy,
    PullPolicySpec,
    parse_duration,
)

SEED = Path(__file__).resolve().parents[2] / "data" / "seed"


def _docs(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((SEED / name).read_text()))


def test_seed_prometheus_policy_keeps_its_meaning() -> None:
    policy_doc, secret = _docs("popular-build-images.yaml")
    assert secret["kind"] == "Secret"
    policy = DiscoveryPolicy.from_obj(policy_doc)
    spec = policy.spec
    assert policy.metadata.name == "popular-build-images"
    assert parse_duration(spec.interval) == 3600
    assert spec.top_x == 30
    assert spec.image_filter == r"^(?!.*ecr\..*amazonaws\.com).*$"
    (source,) = spec.sources
    assert source.type == "prometheus"
    assert source.registry is None
    assert source.prometheus is not None
    assert source.prometheus.endpoint == "https://mimir.example.com"
    assert source.prometheus.query.startswith("count(container_memory_working_set_bytes{")
    assert source.prometheus.query.rstrip().endswith("}) by (image)")
    assert source.prometheus.query_type == "instant"
    assert source.secret_ref is not None
    assert source.secret_ref.name == secret["metadata"]["name"] == "prometheus-creds"
    assert source.weight == 1.0
    assert spec.source_names() == ["prometheus-0"]


def test_seed_registry_policy_keeps_its_meaning() -> None:
    (doc,) = _docs("gitlab-helpers.yaml")
    spec = DiscoveryPolicy.from_obj(doc).spec
    assert parse_duration(spec.interval) == 6 * 3600
    assert spec.top_x == 10
    assert spec.image_filter is None
    (source,) = spec.sources
    assert source.type == "registry"
    assert source.registry is not None
    reg = source.registry
    assert reg.url == "https://registry.gitlab.com"
    assert reg.repositories == ["gitlab-org/gitlab-runner/gitlab-runner-helper"]
    assert reg.tag_filter == r"^v\d+\.\d+\.\d+$"
    assert reg.top_x == 5
    assert reg.image_template == "registry.gitlab.com/{{ .Repository }}:x86_64-{{ .Tag }}"
    assert reg.max_scan == 5000
    assert spec.source_names() == ["registry-0"]


def test_spec_round_trips_to_wire_form_without_inventing_fields() -> None:
    (doc,) = _docs("gitlab-helpers.yaml")
    wire = DiscoveryPolicySpec.model_validate(doc["spec"]).to_json()
    assert wire["sources"][0]["registry"]["tagFilter"] == doc["spec"]["sources"][0]["registry"]["tagFilter"]
    assert "prometheus" not in wire["sources"][0]
    assert "imageFilter" not in wire
    assert DiscoveryPolicySpec.model_validate(wire) == DiscoveryPolicySpec.model_validate(doc["spec"])


def _prom(**extra: Any) -> dict[str, Any]:
    return {"type": "prometheus", "prometheus": {"endpoint": "http://127.0.0.1:9090", "query": "up"}, **extra}


def _reg(**extra: Any) -> dict[str, Any]:
    return {
        "type": "registry",
        "registry": {"url": "http://127.0.0.1:5000", "repositories": ["a/b"]},
        **extra,
    }


def test_discovery_defaults() -> None:
    spec = DiscoveryPolicySpec.model_validate({"sources": [_prom(), _reg()]})
    assert spec.interval == "1h"
    assert spec.top_x == 50
    prom = spec.sources[0].prometheus
    assert prom is not None
    assert (prom.query_type, prom.lookback, prom.step, prom.timeout) == ("instant", "1h", "5m", "30s")
    reg = spec.sources[1].registry
    assert reg is not None
    assert (reg.top_x, reg.max_scan, reg.timeout, reg.tag_filter) == (10, 5000, "30s", None)
    assert spec.source_names() == ["prometheus-0", "registry-1"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"sources": [{"type": "prometheus", "registry": _reg()["registry"]}]},
            "requires the prometheus block",
        ),
        (
            {"sources": [{"type": "registry", "prometheus": _prom()["prometheus"]}]},
            "requires the registry block",
        ),
        ({"sources": [{**_prom(), "registry": _reg()["registry"]}]}, "registry block is only allowed"),
        ({"sources": [{**_reg(), "prometheus": _prom()["prometheus"]}]}, "prometheus block is only allowed"),
        ({"sources": [_prom(name="a"), _reg(name="a")]}, "source names must be unique"),
        ({"sources": [_prom()], "interval": "29s"}, "interval must be between"),
        ({"sources": [_prom()], "interval": "169h"}, "interval must be between"),
        ({"sources": [_prom()], "interval": "1d"}, "pattern"),
        ({"sources": [_prom()], "topX": 0}, "greater than or equal to 1"),
        ({"sources": [_prom()], "topX": 1001}, "less than or equal to 1000"),
        ({"sources": []}, "at least 1 item"),
        ({"sources": [_prom(weight=0)]}, "greater than 0"),
        ({"sources": [{"type": "influx"}]}, "'prometheus' or 'registry'"),
        ({"sources": [_prom(name="Bad_Name")]}, "pattern"),
        (
            {"sources": [{"type": "prometheus", "prometheus": {"endpoint": "mimir", "query": "up"}}]},
            "pattern",
        ),
        (
            {"sources": [{"type": "prometheus", "prometheus": {"endpoint": "http://x", "query": ""}}]},
            "at least 1",
        ),
        (
            {"sources": [{"type": "registry", "registry": {"url": "http://x", "repositories": []}}]},
            "at least 1",
        ),
    ],
)
def test_discovery_rejects_what_the_schema_rejects(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DiscoveryPolicySpec.model_validate(spec)


def test_interval_bounds_are_inclusive() -> None:
    for interval in ("30s", "168h", "0.5m"):
        assert (
            DiscoveryPolicySpec.model_validate({"sources": [_prom()], "interval": interval}).interval
            == interval
        )


@pytest.mark.parametrize(
    ("spec", "reference"),
    [
        ({"image": "nginx"}, "nginx:latest"),
        ({"image": "docker.io/library/nginx", "tag": "1.25"}, "docker.io/library/nginx:1.25"),
        (
            {"image": "localhost:5000/a/b", "digest": "sha256:" + "a" * 64},
            "localhost:5000/a/b@sha256:" + "a" * 64,
        ),
    ],
)
def test_cached_image_reference(spec: dict[str, Any], reference: str) -> None:
    assert CachedImageSpec.model_validate(spec).reference == reference


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"image": "nginx", "tag": "1", "digest": "sha256:" + "a" * 64}, "mutually exclusive"),
        ({"image": "nginx:1.25"}, "pattern"),
        ({"image": "Nginx"}, "pattern"),
        ({"image": "nginx", "digest": "sha256:abc"}, "pattern"),
        ({"image": "nginx", "tag": "-x"}, "pattern"),
        ({"image": "nginx", "imagePullPolicy": "Never"}, "'Always' or 'IfNotPresent'"),
    ],
)
def test_cached_image_rejects(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CachedImageSpec.model_validate(spec)


def test_cached_image_set_may_be_empty_and_template_defaults() -> None:
    cis = CachedImageSet.from_obj({"metadata": {"name": "empty"}})
    assert cis.spec.discovery_policy_ref is None
    assert cis.spec.images == []
    template = cis.spec.template()
    assert template.image_pull_policy == "IfNotPresent"
    assert template.to_json() == {
        "imagePullPolicy": "IfNotPresent",
        "imagePullSecrets": [],
        "nodeSelector": {},
        "tolerations": [],
    }


def test_child_spec_built_from_set_template_compares_equal() -> None:
    cis = CachedImageSet.from_obj(
        {
            "spec": {
                "discoveryPolicyRef": {"name": "p"},
                "imagePullSecrets": [{"name": "pull"}],
                "nodeSelector": {"pool": "build"},
                "tolerations": [{"key": "build", "operator": "Exists", "effect": "NoSchedule"}],
                "pullPolicyRef": {"name": "gentle"},
            }
        }
    )
    child = CachedImageSpec.model_validate({"image": "nginx", "tag": "1", **cis.spec.template().to_json()})
    assert child.template() == cis.spec.template()
    assert child.pull_policy_ref is not None
    assert child.pull_policy_ref.name == "gentle"


def test_pull_policy_defaults_are_the_documented_fallback() -> None:
    assert PullPolicy.from_obj({"metadata": {"name": "p"}}).spec == DEFAULT_PULL_POLICY
    d = DEFAULT_PULL_POLICY
    assert (d.max_concurrent_nodes, d.max_concurrent_pulls, d.max_pulls_per_node) == (2, 5, 1)
    assert parse_duration(d.min_delay_between_pulls) == 2
    assert parse_duration(d.failure_backoff.initial) == 30
    assert parse_duration(d.failure_backoff.max) == 1800
    assert d.failure_backoff.jitter == 0.2
    assert parse_duration(d.pull_timeout) == 600
    assert d.repull_interval is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"failureBackoff": {"initial": "5m", "max": "1m"}}, "max must be >= failureBackoff.initial"),
        ({"failureBackoff": {"initial": "45m"}}, "max must be >= failureBackoff.initial"),
        ({"failureBackoff": {"jitter": 1.5}}, "less than or equal to 1"),
        ({"maxConcurrentNodes": 0}, "greater than or equal to 1"),
        ({"pullTimeout": "ten minutes"}, "pattern"),
    ],
)
def test_pull_policy_rejects(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PullPolicySpec.model_validate(spec)


def test_kinds_registry() -> None:
    assert {k: (v.plural, v.short_names) for k, v in KINDS.items()} == {
        "DiscoveryPolicy": ("discoverypolicies", ("dp",)),
        "CachedImageSet": ("cachedimagesets", ("cis",)),
        "CachedImage": ("cachedimages", ("ci",)),
        "PullPolicy": ("pullpolicies", ("pp",)),
    }
    for info in KINDS.values():
        assert info.api_version == "drop.corewire.io/v1alpha1"
        assert info.categories == ("drop",)
        assert not info.namespaced
        assert info.model.model_fields["spec"] is not None
