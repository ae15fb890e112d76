"""One version number for every artefact, and the release workflow that publishes them.

The workflow itself can only run on GitHub; actionlint checks it (``test_chart.py``), these tests
check what it promises, and ``tests/integration/test_chart_release.py`` runs its chart steps here.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from devtools import release
from devtools.tools import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "release.yml"


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def _steps(workflow: dict[Any, Any], job: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = workflow["jobs"][job]["steps"]
    return steps


def test_every_version_in_the_repository_agrees() -> None:
    assert release.problems() == []
    stated = release.versions()
    assert set(stated.values()) == {release.package_version()}, stated


def test_a_tag_that_is_not_the_version_is_refused() -> None:
    version = release.package_version()
    assert release.problems(f"v{version}") == []
    (problem,) = release.problems("v99.0.0")
    assert f"expected 'v{version}'" in problem
    assert release.problems(version), "tags carry a leading v"


def test_release_notes_are_the_versions_changelog_section() -> None:
    notes = release.changelog_notes(release.package_version())
    assert notes.strip()
    assert "\n## " not in notes, "only this version's section"
    assert release.changelog_notes("0.0.0-never") == ""
    assert release.main(["notes", "0.0.0-never"]) == 1


def test_workflow_releases_only_version_tags_after_checking_them(workflow: dict[Any, Any]) -> None:
    # PyYAML reads the key `on` as True.
    assert workflow[True] == {"push": {"tags": ["v[0-9]+.[0-9]+.[0-9]+"]}}
    runs = [step.get("run", "") for step in _steps(workflow, "check")]
    assert 'python -m devtools.release check --tag "$GITHUB_REF_NAME"' in runs
    for job in ("image", "chart", "github-release"):
        needs = workflow["jobs"][job]["needs"]
        assert "check" in ([needs] if isinstance(needs, str) else needs)


def test_workflow_pushes_a_signed_multi_arch_image_with_an_sbom(workflow: dict[Any, Any]) -> None:
    job = workflow["jobs"]["image"]
    assert job["permissions"]["id-token"] == "write", "keyless signing needs the OIDC token"
    steps = _steps(workflow, "image")
    build = next(s for s in steps if s.get("uses", "").startswith("docker/build-push-action@"))
    assert set(build["with"]["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["with"]["push"] is True
    assert any(s.get("uses", "").startswith("docker/setup-qemu-action@") for s in steps)
    script = "\n".join(s.get("run", "") for s in steps)
    assert 'cosign sign --yes "$REF"' in script
    assert "cosign attest --yes --type spdxjson" in script
    assert "ghcr.io/${owner}/drop-operator" in "\n".join(s.get("run", "") for s in _steps(workflow, "check"))


def test_workflow_pushes_the_chart_with_the_code_the_tests_run(workflow: dict[Any, Any]) -> None:
    script = "\n".join(s.get("run", "") for s in _steps(workflow, "chart"))
    assert (
        'python -m devtools.release chart --image-repository "$IMAGE" --out dist --push "$CHARTS"' in script
    )
    notes = "\n".join(s.get("run", "") for s in _steps(workflow, "github-release"))
    assert 'python -m devtools.release notes "$VERSION"' in notes
