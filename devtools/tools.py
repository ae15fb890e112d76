"""Where the Go-built tools live, and a clear failure when one is missing.

Versions are pinned once in ``hack/versions.env``; ``hack/tools.sh`` builds each tool into
``$DROP_TOOLS_DIR`` (default ``~/.cache/drop-operator/tools``) as ``<name>-<version>/<binary>``.
"""

from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

_VERSION_KEYS = {
    "kubernetes": "KUBERNETES_VERSION",
    "etcd": "ETCD_VERSION",
    "kwok": "KWOK_VERSION",
    "helm": "HELM_VERSION",
    "distribution": "DISTRIBUTION_VERSION",
    "actionlint": "ACTIONLINT_VERSION",
}


class ToolMissingError(RuntimeError):
    """A tool the tests need is not installed; the message says how to get it."""


@cache
def versions() -> dict[str, str]:
    """The pinned versions from hack/versions.env, by tool name."""
    values: dict[str, str] = {}
    for raw in (REPO_ROOT / "hack" / "versions.env").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return {tool: values[key] for tool, key in _VERSION_KEYS.items()}


def tools_dir() -> Path:
    return Path(os.environ.get("DROP_TOOLS_DIR", Path.home() / ".cache" / "drop-operator" / "tools"))


def go_tool(tool: str, binary: str | None = None) -> Path:
    """Path of a Go-built binary, or ToolMissingError telling how to build it."""
    path = tools_dir() / f"{tool}-{versions()[tool]}" / (binary or tool)
    if not os.access(path, os.X_OK):
        raise ToolMissingError(
            f"{path} is missing: run `task tools` (or `bash hack/tools.sh {tool}`) to build it"
        )
    return path


def system_tool(binary: str, package: str) -> Path:
    """Path of a binary from a Debian package, or ToolMissingError naming the package."""
    found = shutil.which(binary)
    if not found:
        raise ToolMissingError(
            f"{binary} is missing: run `task tools` (or `apt-get install -y --no-install-recommends {package}`)"
        )
    return Path(found)


if __name__ == "__main__":
    import sys

    # `python -m devtools.tools helm` prints the path of a Go-built tool (for Taskfile and scripts).
    print(go_tool(*sys.argv[1:3]))
