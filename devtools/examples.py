"""The documentation's examples (``examples/``), pointed at servers that exist here.

The demo and the e2e suite apply the very files a reader sees. Only the Prometheus ``endpoint``
and the registry ``url`` change; the query, the filters and the ``imageTemplate`` stay verbatim,
so the discovered images are spelled exactly as on a real cluster.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from devtools.tools import REPO_ROOT

__all__ = ["EXAMPLES", "POLICY_FILES", "SET_FILES", "load", "localize", "write_localized"]

EXAMPLES = REPO_ROOT / "examples"
POLICY_FILES = ("discoverypolicy-popular-build-images.yaml", "discoverypolicy-gitlab-helpers.yaml")
SET_FILES = ("cachedimageset-popular-build-images.yaml", "cachedimageset-gitlab-helpers.yaml")
PULL_POLICY_FILE = "pullpolicy-gentle.yaml"

Doc = dict[str, Any]


def load(name: str) -> list[Doc]:
    """The YAML documents of ``examples/<name>``."""
    return [doc for doc in yaml.safe_load_all((EXAMPLES / name).read_text()) if doc]


def localize(docs: Iterable[Doc], *, prometheus: str | None = None, registry: str | None = None) -> list[Doc]:
    """Copies of ``docs`` whose Prometheus sources query ``prometheus`` and whose registry sources
    list ``registry``; nothing else changes, except that Secrets come first.

    The documentation lists the Secret after the policy that uses it; applied in that order, the
    policy's first sync can find no credentials and waits for its retry. Local runs apply the
    Secret first so the first sync succeeds.
    """
    out: list[Doc] = []
    for original in docs:
        doc = copy.deepcopy(original)
        if doc.get("kind") == "DiscoveryPolicy":
            for source in doc.get("spec", {}).get("sources", []):
                if prometheus and "prometheus" in source:
                    source["prometheus"]["endpoint"] = prometheus
                if registry and "registry" in source:
                    source["registry"]["url"] = registry
        out.append(doc)
    return sorted(out, key=lambda doc: doc.get("kind") != "Secret")


def write_localized(directory: Path, *, prometheus: str, registry: str) -> list[Path]:
    """Write the local variant of every example into ``directory`` (what the demo applies)."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in (PULL_POLICY_FILE, *POLICY_FILES, *SET_FILES):
        docs = localize(load(name), prometheus=prometheus, registry=registry)
        path = directory / name
        header = f"# Generated from examples/{name}: only the source endpoints point at local servers.\n"
        path.write_text(header + yaml.safe_dump_all(docs, sort_keys=False))
        written.append(path)
    return written
