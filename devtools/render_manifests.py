"""Render ``manifests/install.yaml`` from the Helm chart, for people who install without Helm.

The plain manifests are never edited by hand: they are the chart's ``helm template`` output with
default values, released as ``drop-operator`` into ``drop-system``, preceded by that Namespace
(labelled for Pod Security "restricted", which the operator and its pull pods meet). CRDs are not
part of it; they stay in ``manifests/crds/`` and are applied first.

    python -m devtools.render_manifests           # rewrite manifests/install.yaml
    python -m devtools.render_manifests --check   # exit 1 if the committed file is stale
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence

from devtools.tools import REPO_ROOT, go_tool, versions

CHART_DIR = REPO_ROOT / "charts" / "drop-operator"
INSTALL_YAML = REPO_ROOT / "manifests" / "install.yaml"
RELEASE = "drop-operator"
NAMESPACE = "drop-system"

_HEADER = f"""\
# drop-operator, plain-YAML install. GENERATED from charts/drop-operator with its default values by
# `python -m devtools.render_manifests`; do not edit. Apply the CRDs first:
#   kubectl apply --server-side -f manifests/crds/
#   kubectl apply -f manifests/install.yaml
---
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
  labels:
    app.kubernetes.io/part-of: drop-operator
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/warn: restricted
"""


def helm_template(*args: str, release: str = RELEASE, namespace: str = NAMESPACE) -> str:
    """``helm template`` of the chart (CRDs excluded) with extra arguments such as ``--set``.

    A helm built from source believes it talks to Kubernetes 1.20, which the chart's ``kubeVersion``
    rejects, so the render names the Kubernetes version the tests run against.
    """
    command = [str(go_tool("helm")), "template", release, str(CHART_DIR), "--namespace", namespace]
    command += ["--kube-version", versions()["kubernetes"], *args]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"helm template failed:\n{result.stderr}")
    return result.stdout


def render() -> str:
    """The content ``manifests/install.yaml`` must have."""
    return _HEADER + helm_template()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if manifests/install.yaml is stale")
    args = parser.parse_args(argv)
    wanted = render()
    if args.check:
        current = INSTALL_YAML.read_text() if INSTALL_YAML.exists() else ""
        if current != wanted:
            print(
                f"{INSTALL_YAML.relative_to(REPO_ROOT)} is stale: run `python -m devtools.render_manifests`",
                file=sys.stderr,
            )
            return 1
        return 0
    INSTALL_YAML.parent.mkdir(parents=True, exist_ok=True)
    INSTALL_YAML.write_text(wanted)
    print(f"wrote {INSTALL_YAML.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
