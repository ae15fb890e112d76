"""The release version: one number, kept in ``pyproject.toml``, that every artefact must carry.

``[project].version`` in ``pyproject.toml`` is the source. The chart's ``version`` and
``appVersion`` (so the chart's default image tag), the Dockerfile's default ``VERSION`` label and a
``## [X.Y.Z]`` section of ``CHANGELOG.md`` must agree with it; the release workflow also checks the
pushed tag (``vX.Y.Z``) against it and takes the GitHub release notes from that CHANGELOG section.

    python -m devtools.release check [--tag v0.1.0]   # exit 1, listing every mismatch
    python -m devtools.release version                # print the version
    python -m devtools.release notes [VERSION]        # print the CHANGELOG section (release notes)
    python -m devtools.release chart [--image-repository REPO] [--push oci://HOST/PATH] [--plain-http]

``chart`` packages the chart at the release version, its default ``image.repository`` pointing at
where the release's image is pushed, and pushes it as an OCI artifact: the release workflow and
the tests run the same code.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path

import yaml

from devtools.stack import CHART, helm_binary
from devtools.tools import REPO_ROOT

__all__ = ["changelog_notes", "package_chart", "package_version", "problems", "push_chart", "versions"]

PYPROJECT = REPO_ROOT / "pyproject.toml"
CHART_YAML = CHART / "Chart.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
CHANGELOG = REPO_ROOT / "CHANGELOG.md"
_SECTION = re.compile(r"^## \[(?P<version>[^\]]+)\][^\n]*\n(?P<body>.*?)(?=^## |\Z)", re.M | re.S)
_DOCKERFILE_VERSION = re.compile(r"^ARG VERSION=(\S+)$", re.M)
_IMAGE_REPOSITORY = re.compile(r"^(  repository: )drop-operator$", re.M)
_DIGEST = re.compile(r"^Digest: (sha256:[0-9a-f]{64})$", re.M)


def package_version() -> str:
    """``[project].version`` of ``pyproject.toml``: the release version."""
    return str(tomllib.loads(PYPROJECT.read_text())["project"]["version"])


def versions() -> dict[str, str | None]:
    """Every place that states the version, by a name for messages; None where none is stated."""
    chart = yaml.safe_load(CHART_YAML.read_text())
    dockerfile = _DOCKERFILE_VERSION.search(DOCKERFILE.read_text())
    changelog = _SECTION.search(CHANGELOG.read_text()) if CHANGELOG.exists() else None
    return {
        "pyproject.toml [project].version": package_version(),
        "Chart.yaml version": str(chart["version"]),
        "Chart.yaml appVersion": str(chart["appVersion"]),
        "Dockerfile ARG VERSION": dockerfile.group(1) if dockerfile else None,
        "CHANGELOG.md latest section": changelog.group("version") if changelog else None,
    }


def problems(tag: str | None = None) -> list[str]:
    """Mismatches with the package version (and with git ``tag`` ``vX.Y.Z`` if given); [] if none."""
    want = package_version()
    found = [f"{where} is {got!r}, expected {want!r}" for where, got in versions().items() if got != want]
    if tag is not None and tag != f"v{want}":
        found.append(f"tag {tag!r} does not name the version: expected 'v{want}'")
    if not changelog_notes(want).strip():
        found.append(f"CHANGELOG.md has no notes under '## [{want}]'")
    return found


def changelog_notes(version: str) -> str:
    """The body of ``CHANGELOG.md``'s ``## [version]`` section, or "" if there is none."""
    text = CHANGELOG.read_text() if CHANGELOG.exists() else ""
    for match in _SECTION.finditer(text):
        if match.group("version") == version:
            return match.group("body").strip() + "\n"
    return ""


def _helm(*args: str | Path, timeout: float = 300) -> str:
    result = subprocess.run(
        [str(helm_binary()), *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"helm {args[0]} failed:\n{result.stdout}{result.stderr}")
    return result.stdout + result.stderr


def package_chart(out_dir: Path, *, image_repository: str | None = None) -> Path:
    """``helm package`` the chart at the release version into ``out_dir``; the path of the ``.tgz``.

    With ``image_repository`` the packaged ``values.yaml`` defaults to that image (the chart in the
    repository keeps ``drop-operator``); ``image.tag`` stays empty, i.e. the chart's appVersion.
    """
    version = package_version()
    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp) / CHART.name
        shutil.copytree(CHART, chart)
        if image_repository:
            values = chart / "values.yaml"
            text, count = _IMAGE_REPOSITORY.subn(rf"\g<1>{image_repository}", values.read_text())
            if count != 1:
                raise RuntimeError("values.yaml no longer has `  repository: drop-operator` under image")
            values.write_text(text)
        out_dir.mkdir(parents=True, exist_ok=True)
        _helm(
            "package", chart, f"--version={version}", f"--app-version={version}", f"--destination={out_dir}"
        )
    return out_dir / f"{CHART.name}-{version}.tgz"


def push_chart(package: Path, repository: str, *, plain_http: bool = False) -> str:
    """``helm push`` ``package`` to ``repository`` (``oci://host/path``); the pushed manifest's digest."""
    output = _helm("push", package, repository, *(["--plain-http"] if plain_http else []))
    match = _DIGEST.search(output)
    if match is None:
        raise RuntimeError(f"helm push printed no digest:\n{output}")
    return match.group(1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.release", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="every version in the repository agrees (and with --tag)")
    check.add_argument("--tag", help="the git tag being released, e.g. v0.1.0")
    sub.add_parser("version", help="print the release version")
    notes = sub.add_parser("notes", help="print the CHANGELOG section of a version")
    notes.add_argument("version", nargs="?")
    chart = sub.add_parser("chart", help="package the chart at the release version, optionally push it")
    chart.add_argument(
        "--image-repository", help="the image the chart installs by default (else drop-operator)"
    )
    chart.add_argument("--out", type=Path, default=Path("dist"), help="where the .tgz goes (default: dist)")
    chart.add_argument("--push", metavar="oci://HOST/PATH", help="push the package there")
    chart.add_argument("--plain-http", action="store_true", help="the registry speaks plain HTTP")
    args = parser.parse_args(argv)
    if args.command == "chart":
        package = package_chart(args.out, image_repository=args.image_repository)
        print(f"packaged {package}")
        if args.push:
            print(
                f"pushed {args.push}/{CHART.name}:{package_version()}@{push_chart(package, args.push, plain_http=args.plain_http)}"
            )
        return 0
    if args.command == "version":
        print(package_version())
        return 0
    if args.command == "notes":
        text = changelog_notes(args.version or package_version())
        if not text:
            print(f"CHANGELOG.md has no section for {args.version or package_version()}", file=sys.stderr)
            return 1
        sys.stdout.write(text)
        return 0
    found = problems(args.tag)
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
