"""The generated CRDs: structural, carrying the models' rules, and identical to the committed YAML."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.crdgen import (
    DEFAULT_OUTPUT_DIRS,
    SchemaError,
    build_crd,
    main,
    render_all,
    structural_schema,
)
from drop_operator.api import KINDS

REPO = Path(__file__).resolve().parents[3]
_ALLOWED = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "format",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
}


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from _nodes(prop, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


def _root(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = build_crd(KINDS[kind])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_schema_is_structural(kind: str) -> None:
    for path, node in _nodes(_root(kind)):
        assert set(node) <= _ALLOWED, f"{kind}{path}: {set(node) - _ALLOWED}"
        assert "type" in node, f"{kind}{path} has no type"
        if node["type"] == "object" and path != ".metadata":
            assert "properties" in node or "additionalProperties" in node, f"{kind}{path}"
        assert "default" not in node or node["default"] is not None, f"{kind}{path}: null default"
        for key in node.get("required", []):
            assert key in node["properties"], f"{kind}{path}: required {key} is not a property"
        if node.get("x-kubernetes-list-type") == "map":
            item = node["items"]
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in item.get("required", []) or "default" in item["properties"][key], (
                    f"{kind}{path}"
                )
    text = yaml.safe_dump(build_crd(KINDS[kind]))
    for word in (
        "$ref",
        "anyOf",
        "allOf",
        "oneOf",
        "nullable",
        "const",
        "title",
        "x-kubernetes-preserve-unknown",
    ):
        assert word not in text, f"{kind}: {word}"


def _rules(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for path, node in _nodes(schema):
        for rule in node.get("x-kubernetes-validations", []):
            yield path, node, rule


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_cel_rules_reference_existing_fields_and_are_cost_bounded(kind: str) -> None:
    """The API server compiles the rules; this catches misspelt fields and unbounded inputs early."""
    for path, node, rule in _rules(_root(kind)):
        assert rule["message"], f"{kind}{path}: rule without message"
        expression = rule["rule"]
        assert expression.count("(") == expression.count(")"), expression
        for field in re.findall(r"\bself\.([A-Za-z_]\w*)", expression):
            if field in ("all", "exists", "exists_one", "matches", "map", "filter", "size"):
                continue
            assert field in node.get("properties", {}), f"{kind}{path}: {expression} uses unknown {field}"
        if node["type"] == "string":
            assert "maxLength" in node, f"{kind}{path}: string in CEL needs maxLength"
        if node["type"] == "array":
            assert "maxItems" in node, f"{kind}{path}: list in CEL needs maxItems"
            for sub_path, sub in _nodes(node["items"]):
                if sub["type"] == "string":
                    assert "maxLength" in sub or "enum" in sub, f"{kind}{path}{sub_path}"


def test_expected_rules_are_present() -> None:
    rules = {(kind, path, r["rule"]) for kind in KINDS for path, _, r in _rules(_root(kind))}
    paths = {(kind, path) for kind, path, _ in rules}
    assert ("DiscoveryPolicy", ".spec.interval") in paths
    assert ("DiscoveryPolicy", ".spec.sources") in paths
    assert ("DiscoveryPolicy", ".spec.sources[]") in paths
    assert ("CachedImage", ".spec") in paths
    assert ("PullPolicy", ".spec.failureBackoff") in paths
    assert all(kind != "CachedImageSet" or not path.startswith(".status") for kind, path in paths)


def test_defaults_and_status() -> None:
    dp = _root("DiscoveryPolicy")
    assert dp["required"] == ["spec"]
    spec = dp["properties"]["spec"]
    assert spec["required"] == ["sources"]
    assert spec["properties"]["interval"]["default"] == "1h"
    assert spec["properties"]["topX"]["default"] == 50
    source = spec["properties"]["sources"]["items"]
    assert source["required"] == ["type"]
    assert source["properties"]["weight"] == {
        "default": 1.0,
        "description": source["properties"]["weight"]["description"],
        "exclusiveMinimum": True,
        "maximum": 1000000,
        "minimum": 0,
        "type": "number",
    }
    assert source["properties"]["prometheus"]["required"] == ["endpoint", "query"]
    status = dp["properties"]["status"]
    assert all("default" not in node for _, node in _nodes(status)), "status must carry no defaults"
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]

    pp = _root("PullPolicy")
    assert "required" not in pp
    assert pp["properties"]["spec"]["default"] == {}
    assert pp["properties"]["spec"]["properties"]["failureBackoff"]["default"] == {}
    cis = _root("CachedImageSet")
    assert cis["properties"]["spec"]["default"] == {}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_crd_names_columns_and_subresource(kind: str) -> None:
    info = KINDS[kind]
    crd = build_crd(info)
    assert crd["metadata"]["name"] == f"{info.plural}.drop.corewire.io"
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == list(info.short_names)
    assert crd["spec"]["names"]["categories"] == ["drop"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[-1] == "Age"
    assert len(columns) >= 4


def test_optional_becomes_plain_type() -> None:
    converted = structural_schema(
        {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}], "default": None, "title": "X"}, {}
    )
    assert converted == {"type": "string", "maxLength": 3}


def test_unexpressible_schema_is_an_error() -> None:
    with pytest.raises(SchemaError, match="anyOf"):
        structural_schema({"anyOf": [{"type": "string"}, {"type": "integer"}]}, {})
    with pytest.raises(SchemaError, match="preserve-unknown-fields"):
        structural_schema({"type": "object"}, {})


def test_committed_crds_are_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    """Fails when a model changed without `python -m devtools.crdgen`."""
    dirs = [str(REPO / d) for d in DEFAULT_OUTPUT_DIRS]
    code = main(["--check", *dirs])
    assert code == 0, capsys.readouterr().out


def test_check_reports_drift_and_write_fixes_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", str(tmp_path)]) == 1
    assert "missing" in capsys.readouterr().out
    assert main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(render_all())
    assert main(["--check", str(tmp_path)]) == 0
    stale = tmp_path / "pullpolicies.drop.corewire.io.yaml"
    stale.write_text(stale.read_text().replace("default: 2s", "default: 3s"))
    (tmp_path / "old.drop.corewire.io.yaml").write_text("{}\n")
    assert main(["--check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "default: 3s" in out
    assert "default: 2s" in out
    assert "old.drop.corewire.io.yaml: no longer generated" in out


def test_generated_yaml_parses_back_to_the_crd() -> None:
    for name, text in render_all().items():
        crd = yaml.safe_load(text)
        assert f"{crd['metadata']['name']}.yaml" == name
