"""Generate ``docs/reference.md`` from the CRDs that :mod:`devtools.crdgen` builds.

Usage (from the repository root)::

    python -m devtools.docgen            # write docs/reference.md
    python -m devtools.docgen --check    # exit 1 with a diff when it is stale
    python -m devtools.docgen OUT.md     # write (or --check) another file

The reference is rendered from the same ``openAPIV3Schema`` the API server receives, not from the
models directly: descriptions, defaults, bounds, patterns and CEL rules then read exactly as the
server enforces them, and a field cannot be documented differently from how it is validated.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.crdgen import build_crd
from drop_operator.api.duration import DURATION_PATTERN
from drop_operator.api.groups import KINDS, KindInfo

__all__ = ["DEFAULT_OUTPUT", "main", "render"]

DEFAULT_OUTPUT = "docs/reference.md"
_DASH = "\N{EN DASH}"  # in ranges such as "length 1 to 255"

_INTRO = """\
# API reference

<!-- Generated from drop_operator/api by `python -m devtools.docgen`. Do not edit. -->

Every field of the four kinds, as the API server validates them: this page is generated from the
same schema as the CRDs in `manifests/crds/`, so defaults, bounds, patterns and rules here are the
ones `kubectl apply` enforces. `task generate` rebuilds it; `task lint` fails when it is stale. For
what the fields do together, see [Discovery](discovery.md) and [Caching](caching.md).

All kinds are cluster-scoped and belong to the category `drop`
(`kubectl get drop` lists them all). Durations are Go duration strings such as `30s`, `5m`, `1h30m`.
"""


@dataclass
class _Section:
    """One object of a kind's schema, documented as a table of its fields."""

    anchor: str
    title: str
    schema: dict[str, Any]


@dataclass
class _Context:
    """Shared across kinds: objects already documented, so an identical one links there instead."""

    seen: dict[str, str] = field(default_factory=dict)


def _anchor(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped, ``<x>`` not taken for HTML."""
    parts = " ".join(text.split()).split("`")
    for i in range(0, len(parts), 2):  # outside code spans
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts).replace("|", "\\|")


def _code(value: str) -> str:
    if not value:
        return '`""`'
    fence = "``" if "`" in value else "`"
    pad = " " if "`" in value else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def _scalar(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _is_object(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "object" and bool(schema.get("properties"))


def _shape(schema: dict[str, Any]) -> str:
    """Canonical form of an object schema, to recognise a type documented already."""
    return json.dumps(schema, sort_keys=True)


def _type(schema: dict[str, Any], link: str | None) -> str:
    kind = schema.get("type", "")
    if kind == "array":
        items = schema.get("items") or {}
        return "[]" + _type(items, link)
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return f"map[string]{_type(extra, None)}"
        return f"[object](#{link})" if link else "object"
    fmt = schema.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def _rules(schema: dict[str, Any]) -> list[str]:
    return [str(r.get("message") or r.get("rule")) for r in schema.get("x-kubernetes-validations") or ()]


def _bounds(schema: dict[str, Any], low: str, high: str, unit: str) -> str | None:
    lo, hi = schema.get(low), schema.get(high)
    if lo is not None and hi is not None:
        return f"{unit} {lo}{_DASH}{hi}"
    if lo is not None:
        return f"{unit} ≥ {lo}"
    if hi is not None:
        return f"{unit} ≤ {hi}"
    return None


def _validation(schema: dict[str, Any]) -> str:
    parts: list[str] = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(_code(_scalar(v)) for v in schema["enum"]))
    if schema.get("pattern") == DURATION_PATTERN:
        parts.append("Go duration")
    elif "pattern" in schema:
        parts.append("pattern " + _code(schema["pattern"]))
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    if minimum is not None:
        parts.append(f"> {minimum}" if schema.get("exclusiveMinimum") else f"≥ {minimum}")
    if maximum is not None:
        parts.append(f"< {maximum}" if schema.get("exclusiveMaximum") else f"≤ {maximum}")
    for bound in (
        _bounds(schema, "minLength", "maxLength", "length"),
        _bounds(schema, "minItems", "maxItems", "items"),
    ):
        if bound:
            parts.append(bound)
    if schema.get("x-kubernetes-list-type") == "map":
        keys = ", ".join(_code(k) for k in schema.get("x-kubernetes-list-map-keys") or ())
        parts.append(f"unique by {keys}")
    items = schema.get("items")
    if isinstance(items, dict) and not _is_object(items):
        inner = _validation(items)
        if inner:
            parts.append(f"each: {inner}")
    parts.extend(f"rule: {rule}" for rule in _rules(schema) if not _is_object(schema))
    return "; ".join(parts)


def _collect(schema: dict[str, Any], path: str, ctx: _Context, out: list[_Section]) -> str:
    """Add a section for the object at ``path`` (and its nested objects); returns its anchor."""
    shape = _shape(schema)
    if shape in ctx.seen:
        return ctx.seen[shape]
    anchor = _anchor(path)
    ctx.seen[shape] = anchor
    out.append(_Section(anchor, path, schema))
    return anchor


def _nested(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The object a field holds (directly or as list items), if it has fields of its own."""
    if _is_object(schema):
        return schema
    items = schema.get("items")
    if isinstance(items, dict) and _is_object(items):
        return items
    return None


def _sections(root: dict[str, Any], kind: str, ctx: _Context) -> list[_Section]:
    """Every object under ``spec`` and ``status``, depth first, in schema order."""
    out: list[_Section] = []

    def visit(schema: dict[str, Any], path: str) -> None:
        before = len(out)
        _collect(schema, path, ctx, out)
        if len(out) == before:
            return  # documented already
        for name, prop in (schema.get("properties") or {}).items():
            inner = _nested(prop)
            if inner is not None:
                visit(inner, f"{path}.{name}" + ("[]" if inner is not prop else ""))

    for part in ("spec", "status"):
        prop = (root.get("properties") or {}).get(part)
        if isinstance(prop, dict):
            visit(prop, f"{kind}.{part}")
    return out


def _field_rows(section: _Section, ctx: _Context) -> list[str]:
    schema = section.schema
    required = set(schema.get("required") or ())
    rows = [
        "| Field | Type | Default | Required | Validation | Description |",
        "|---|---|---|---|---|---|",
    ]
    for name, prop in (schema.get("properties") or {}).items():
        inner = _nested(prop)
        link = ctx.seen.get(_shape(inner)) if inner is not None else None
        default = _code(_scalar(prop["default"])) if "default" in prop else ""
        cells = [
            _code(name),
            _type(prop, link),
            default,
            "yes" if name in required else "",
            _validation(prop),
            str(prop.get("description") or ""),
        ]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def _columns(info: KindInfo) -> list[str]:
    rows = [
        f"`kubectl get {info.plural}` columns:",
        "",
        "| Column | Type | JSONPath | Description |",
        "|---|---|---|---|",
    ]
    for col in info.printer_columns:
        name = str(col["name"]) + (" (`-o wide`)" if col.get("priority") else "")
        cells = [name, str(col["type"]), _code(str(col["jsonPath"])), str(col.get("description") or "")]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return rows


def _kind(info: KindInfo, ctx: _Context) -> list[str]:
    crd = build_crd(info)
    version = crd["spec"]["versions"][0]
    root: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    lines = [f'<a id="{_anchor(info.kind)}"></a>', f"## {info.kind}", ""]
    if root.get("description"):
        lines += [" ".join(str(root["description"]).split()), ""]
    spec_required = "spec" in (root.get("required") or ())
    spec_default = ((root.get("properties") or {}).get("spec") or {}).get("default")
    lines += [
        "| | |",
        "|---|---|",
        f"| API version | `{info.api_version}` |",
        f"| Scope | {crd['spec']['scope']} |",
        f"| Plural, singular | `{info.plural}`, `{info.singular}` |",
        f"| Short names | {', '.join(_code(s) for s in info.short_names)} |",
        f"| Categories | {', '.join(_code(c) for c in info.categories)} |",
        "| `spec` | "
        + ("required" if spec_required else f"optional (default {_code(_scalar(spec_default))})")
        + " |",
        "| `status` | subresource, written by the operator only |",
        "",
    ]
    lines += _columns(info)
    lines.append("")
    for section in _sections(root, info.kind, ctx):
        lines += [f'<a id="{section.anchor}"></a>', f"### `{section.title}`", ""]
        if section.schema.get("description"):
            lines += [" ".join(str(section.schema["description"]).split()), ""]
        object_rules = _rules(section.schema)
        if object_rules:
            lines += ["Rules:", ""] + [f"- {_cell(rule)}" for rule in object_rules] + [""]
        lines += _field_rows(section, ctx)
        lines.append("")
    return lines


def render() -> str:
    """The whole reference page, byte-stable across runs."""
    ctx = _Context()
    toc = ["## Kinds", ""] + [f"- [{info.kind}](#{_anchor(info.kind)})" for info in KINDS.values()] + [""]
    body: list[str] = []
    for info in KINDS.values():
        body += _kind(info, ctx)
    return _INTRO + "\n" + "\n".join(toc + body).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m devtools.docgen", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 with a diff if the file is stale"
    )
    parser.add_argument(
        "output", nargs="?", type=Path, default=Path(DEFAULT_OUTPUT), help="Markdown file to write"
    )
    args = parser.parse_args(argv)
    path: Path = args.output
    text = render()
    current = path.read_text() if path.exists() else ""
    if args.check:
        if current == text:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=str(path),
            tofile=f"{path} (generated)",
        )
        sys.stdout.write("".join(diff) or f"{path}: missing\n")
        sys.stdout.write("API reference is stale: run `python -m devtools.docgen`\n")
        return 1
    if current != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
