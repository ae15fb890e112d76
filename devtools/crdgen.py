"""Generate the CustomResourceDefinitions from the pydantic models.

Usage (from the repository root)::

    python -m devtools.crdgen            # write manifests/crds and charts/drop-operator/crds
    python -m devtools.crdgen --check    # exit 1 with a diff when a file is stale
    python -m devtools.crdgen OUT_DIR...  # write (or --check) other directories

Pydantic emits JSON Schema 2020-12; the API server wants a *structural* OpenAPI v3 schema. The
conversion inlines every ``$ref``, turns ``Optional[X]`` (``anyOf [X, null]``) into plain ``X``
left out of ``required``, rewrites ``const`` and numeric ``exclusiveMinimum`` into their OpenAPI
forms, drops titles and ``null`` defaults, and keeps descriptions, defaults and the
``x-kubernetes-*`` extensions the models declare. Anything it does not know raises, so a model
change that cannot be expressed structurally fails here rather than at ``kubectl apply``.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from drop_operator.api.groups import KINDS, KindInfo

__all__ = ["DEFAULT_OUTPUT_DIRS", "build_crd", "main", "render_all", "structural_schema"]

DEFAULT_OUTPUT_DIRS = ("manifests/crds", "charts/drop-operator/crds")
# Each file starts a YAML document: `helm show crds` and `cat crds/*` concatenate the files as they
# are, and without the separator `kubectl apply -f -` would read one document (the last CRD).
_HEADER = "---\n# Generated from drop_operator/api by `python -m devtools.crdgen`. Do not edit.\n"

_PASSTHROUGH = {
    "type",
    "description",
    "required",
    "enum",
    "default",
    "minimum",
    "maximum",
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
_DROPPED = {"title"}


class SchemaError(ValueError):
    """The pydantic schema uses a construct a structural CRD schema cannot express."""


def structural_schema(
    schema: dict[str, Any], defs: dict[str, Any], *, keep_defaults: bool = True
) -> dict[str, Any]:
    """Convert one pydantic JSON schema node (and everything under it) to a structural schema."""
    node = dict(schema)
    if "$ref" in node:
        ref = node.pop("$ref")
        target = defs[ref.rsplit("/", 1)[-1]]
        return _overlay(
            structural_schema(target, defs, keep_defaults=keep_defaults), node, defs, keep_defaults
        )
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b != {"type": "null"}]
        if len(branches) != 1:
            raise SchemaError(f"anyOf with {len(branches)} non-null branches cannot be structural: {schema}")
        return _overlay(
            structural_schema(branches[0], defs, keep_defaults=keep_defaults), node, defs, keep_defaults
        )
    if "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) != 1:
            raise SchemaError(f"allOf with {len(parts)} parts is not supported: {schema}")
        return _overlay(
            structural_schema(parts[0], defs, keep_defaults=keep_defaults), node, defs, keep_defaults
        )

    out = _convert_keywords(node, defs, keep_defaults)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "type" not in out:
        raise SchemaError(f"schema node without a type is not structural: {schema}")
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        raise SchemaError(f"object without properties would need preserve-unknown-fields: {schema}")
    return out


def _convert_keywords(node: dict[str, Any], defs: dict[str, Any], keep_defaults: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "default" and (value is None or not keep_defaults):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "properties":
            out[key] = {
                name: structural_schema(prop, defs, keep_defaults=keep_defaults)
                for name, prop in value.items()
            }
        elif key == "items":
            out[key] = structural_schema(value, defs, keep_defaults=keep_defaults)
        elif key == "additionalProperties":
            if value is False:
                continue
            if not isinstance(value, dict):
                raise SchemaError(f"additionalProperties must be a schema: {node}")
            out[key] = structural_schema(value, defs, keep_defaults=keep_defaults)
        elif key == "description":
            # Docstrings use reStructuredText literals; kubectl explain shows plain text.
            out[key] = value.replace("``", "`")
        elif key in _PASSTHROUGH:
            out[key] = value
        else:
            raise SchemaError(f"unsupported schema keyword {key!r} in {node}")
    return out


def _overlay(
    base: dict[str, Any], extra: dict[str, Any], defs: dict[str, Any], keep_defaults: bool
) -> dict[str, Any]:
    """Apply the keywords written next to a ``$ref``/``anyOf`` (description, default, CEL) onto it."""
    converted = _convert_keywords(extra, defs, keep_defaults)
    merged = dict(base)
    for key, value in converted.items():
        if key == "x-kubernetes-validations" and key in merged:
            merged[key] = [*merged[key], *value]
        else:
            merged[key] = value
    return merged


def _model_schema(model: type[Any], *, keep_defaults: bool) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return structural_schema(raw, defs, keep_defaults=keep_defaults)


def build_crd(info: KindInfo) -> dict[str, Any]:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of one kind."""
    fields = info.model.model_fields
    spec_model = fields["spec"].annotation
    status_model = fields["status"].annotation
    if not (isinstance(spec_model, type) and isinstance(status_model, type)):
        raise SchemaError(f"{info.kind}: spec and status must be plain models")
    spec = _model_schema(spec_model, keep_defaults=True)
    spec_required = fields["spec"].is_required()
    if not spec_required and not spec.get("required"):
        # With a default of {} the API server also applies the defaults nested in spec when a
        # manifest omits spec entirely.
        spec["default"] = {}
    # Status is written only by the operator; defaults there would make the server invent values.
    status = _model_schema(status_model, keep_defaults=False)
    root: dict[str, Any] = {
        "description": (info.model.__doc__ or "").strip().replace("``", "`"),
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string", "description": "Versioned schema of this representation."},
            "kind": {"type": "string", "description": "REST resource this object represents."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if spec_required:
        root["required"] = ["spec"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": info.crd_name},
        "spec": {
            "group": info.group,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": list(info.categories),
            },
            "scope": "Namespaced" if info.namespaced else "Cluster",
            "versions": [
                {
                    "name": info.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(info.printer_columns),
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Writes shared sub-schemas out in full: anchors and aliases would only confuse readers."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(info: KindInfo) -> str:
    """YAML text of one CRD, byte-stable across runs."""
    body = yaml.dump(build_crd(info), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
    return _HEADER + body


def render_all() -> dict[str, str]:
    """File name -> YAML text for every kind."""
    return {f"{info.crd_name}.yaml": render(info) for info in KINDS.values()}


def _check(out_dirs: Sequence[Path], files: dict[str, str]) -> list[str]:
    problems: list[str] = []
    for out in out_dirs:
        for name, text in files.items():
            path = out / name
            current = path.read_text() if path.exists() else ""
            if current != text:
                problems.append(
                    "".join(
                        difflib.unified_diff(
                            current.splitlines(keepends=True),
                            text.splitlines(keepends=True),
                            fromfile=str(path),
                            tofile=f"{path} (generated)",
                        )
                    )
                    or f"{path}: missing\n"
                )
        if out.is_dir():
            for extra in sorted(out.glob("*.drop.corewire.io.yaml")):
                if extra.name not in files:
                    problems.append(f"{extra}: no longer generated, remove it\n")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m devtools.crdgen", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 with a diff if files are stale"
    )
    parser.add_argument(
        "out_dirs", nargs="*", type=Path, help=f"output directories (default: {DEFAULT_OUTPUT_DIRS})"
    )
    args = parser.parse_args(argv)
    out_dirs: list[Path] = args.out_dirs or [Path(d) for d in DEFAULT_OUTPUT_DIRS]
    files = render_all()
    if args.check:
        problems = _check(out_dirs, files)
        for problem in problems:
            sys.stdout.write(problem)
        if problems:
            sys.stdout.write("CRDs are stale: run `python -m devtools.crdgen`\n")
            return 1
        return 0
    for out in out_dirs:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            path = out / name
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
