"""Sample data that looks like a real CI cluster, for the demo and the e2e suite.

The documentation's Prometheus example ranks the images of namespace ``build-stuff`` in cluster
``mycluster`` by ``count(container_memory_working_set_bytes{...}) by (image)``: the number of
container series per image, i.e. how many build pods ran it. :func:`build_stuff_series` produces
those series the way cAdvisor does, including everything the query must leave out (the ``POD``
sandbox and the cgroup-level series with an empty ``container``, other namespaces and clusters),
and a few ECR images, popular on purpose, that the example's ``imageFilter`` removes.

:func:`runner_helper_tags` lists tags the way the GitLab runner helper repository has them:
plain versions next to architecture- and flavour-prefixed ones and moving tags, so the
documentation's ``tagFilter`` and ``imageTemplate`` have real work to do.

Counts are distinct, so the ranking the operator must publish is fully determined
(:func:`expected_ranking`).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from devtools.prometheus import Sample

__all__ = [
    "BUILD_IMAGES",
    "CLUSTER",
    "ECR_IMAGES",
    "KIND_HELPER_VERSIONS",
    "KIND_IMAGES",
    "METRIC",
    "NAMESPACE",
    "RUNNER_HELPER_REPOSITORY",
    "Series",
    "build_stuff_series",
    "expected_helper_tags",
    "expected_ranking",
    "exposition",
    "runner_helper_tags",
    "sample_times",
    "samples",
]

METRIC = "container_memory_working_set_bytes"
NAMESPACE = "build-stuff"
CLUSTER = "mycluster"
RUNNER_HELPER_REPOSITORY = "gitlab-org/gitlab-runner/gitlab-runner-helper"

# (image, container name, pods that ran it) — most used first. Counts are distinct on purpose.
BUILD_IMAGES: tuple[tuple[str, str, int], ...] = (
    ("registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:x86_64-v17.5.0", "helper", 64),
    ("docker:27.3-dind", "svc-0", 52),
    ("docker:27.3", "build", 49),
    ("node:20-alpine", "build", 47),
    ("python:3.12-slim", "build", 44),
    ("golang:1.23", "build", 41),
    ("maven:3.9-eclipse-temurin-21", "build", 39),
    ("alpine:3.20", "build", 37),
    ("registry.example.com/platform/ci-base:2024.11", "build", 35),
    ("node:22-alpine", "build", 33),
    ("gradle:8.10-jdk21", "build", 31),
    ("postgres:16-alpine", "svc-1", 30),
    ("redis:7.4-alpine", "svc-2", 29),
    ("python:3.11-slim", "build", 28),
    ("ruby:3.3", "build", 27),
    ("hashicorp/terraform:1.9", "build", 26),
    ("bitnami/kubectl:1.31", "build", 25),
    ("alpine/helm:3.16.2", "build", 24),
    ("registry.example.com/platform/release-tools:3.2.0", "build", 23),
    ("golang:1.22", "build", 22),
    ("rust:1.82-slim", "build", 21),
    ("cypress/included:13.15.0", "build", 20),
    ("mysql:8.4", "svc-3", 19),
    ("ubuntu:24.04", "build", 18),
    ("debian:bookworm-slim", "build", 17),
    ("registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:x86_64-v17.4.1", "helper", 16),
    ("openjdk:21-slim", "build", 15),
    ("php:8.3-cli", "build", 14),
    ("registry.example.com/qa/playwright:1.48", "build", 13),
    ("sonarsource/sonar-scanner-cli:11", "build", 12),
    ("koalaman/shellcheck-alpine:v0.10.0", "build", 11),
    ("hadolint/hadolint:v2.12.0-alpine", "build", 10),
    ("registry.example.com/platform/ci-base:2024.10", "build", 9),
    ("busybox:1.36", "build", 8),
    ("node:18-alpine", "build", 7),
    ("elixir:1.17", "build", 6),
    ("mongo:7.0", "svc-4", 5),
    ("nginx:1.27-alpine", "svc-5", 4),
    ("curlimages/curl:8.10.1", "build", 3),
    ("python:3.10-slim", "build", 2),
)

# Popular, private and excluded by the documentation's imageFilter (123456789012 is AWS's example account).
ECR_IMAGES: tuple[tuple[str, str, int], ...] = (
    ("123456789012.dkr.ecr.eu-central-1.amazonaws.com/ci/builder:2024.11", "build", 58),
    ("123456789012.dkr.ecr.eu-central-1.amazonaws.com/ci/deployer:1.8.3", "build", 43),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/platform/scanner:0.9", "build", 36),
)

# For e2e on a real cluster (kind in CI), where every ranked image is really pulled: small public
# images only, one of them without a shell or libc (hello-world: a single static binary on
# scratch, like a distroless image), and one ECR image the filter must drop.
KIND_IMAGES: tuple[tuple[str, str, int], ...] = (
    ("busybox:1.36", "build", 9),
    ("123456789012.dkr.ecr.eu-central-1.amazonaws.com/ci/builder:2024.11", "build", 8),
    ("alpine:3.20", "build", 7),
    ("hello-world:latest", "build", 6),
    ("curlimages/curl:8.10.1", "build", 5),
    ("redis:7.4-alpine", "svc-0", 4),
    ("nginx:1.27-alpine", "svc-1", 3),
)
# Runner releases whose x86_64 helper images exist, so a real cluster can pull what the example spells.
KIND_HELPER_VERSIONS: tuple[str, ...] = ("v17.0.0", "v17.1.0", "v17.2.0", "v17.3.0", "v17.4.0", "v17.5.0")

ECR_PATTERN = re.compile(r"ecr\..*amazonaws\.com")


@dataclass(frozen=True)
class Series:
    """One series: its labels and a value (bytes of working set)."""

    labels: Mapping[str, str]
    value: float


def _pod_name(image: str, index: int) -> str:
    digest = hashlib.sha256(f"{image}/{index}".encode()).hexdigest()
    return f"runner-{digest[:8]}-project-{int(digest[8:12], 16) % 900 + 100}-concurrent-{index % 4}"


def _bytes(image: str, index: int) -> float:
    seed = int(hashlib.sha256(f"{image}#{index}".encode()).hexdigest()[:6], 16)
    return float(40_000_000 + seed % 900_000_000)


def build_stuff_series(
    images: Sequence[tuple[str, str, int]] = BUILD_IMAGES + ECR_IMAGES,
) -> list[Series]:
    """cAdvisor-like series for ``images``, plus the series the documented query must ignore."""
    out: list[Series] = []
    for image, container, pods in images:
        for i in range(pods):
            pod = _pod_name(image, i)
            base = {"cluster": CLUSTER, "namespace": NAMESPACE, "pod": pod, "node": f"ci-node-{i % 7}"}
            out.append(Series({**base, "container": container, "image": image}, _bytes(image, i)))
            if i < 2:
                # The pause container and the pod's cgroup: in every real cluster, never an answer.
                out.append(Series({**base, "container": "POD", "image": "pause:3.10"}, 4.0e5))
                out.append(Series({**base, "container": "", "image": ""}, _bytes(image, i) * 1.1))
    # The same images elsewhere must not count: another namespace and another cluster.
    for image, container, _ in images[:6]:
        for labels in (
            {"cluster": CLUSTER, "namespace": "monitoring"},
            {"cluster": "othercluster", "namespace": NAMESPACE},
        ):
            for i in range(70):
                pod = _pod_name(f"{labels['cluster']}/{labels['namespace']}/{image}", i)
                out.append(
                    Series({**labels, "pod": pod, "container": container, "image": image}, _bytes(image, i))
                )
    return out


def expected_ranking(
    images: Sequence[tuple[str, str, int]] = BUILD_IMAGES + ECR_IMAGES, top_x: int = 30
) -> list[tuple[str, int]]:
    """``(image, count)`` the documented policy publishes: ECR excluded, most used first."""
    kept = [(image, pods) for image, _, pods in images if not ECR_PATTERN.search(image)]
    return sorted(kept, key=lambda item: (-item[1], item[0]))[:top_x]


def runner_helper_tags(versions: Sequence[str] | None = None) -> list[str]:
    """GitLab-runner-helper-like tags: versions in several spellings, plus moving tags."""
    versions = versions or [
        f"v{major}.{minor}.{patch}"
        for major, minors in ((16, range(8, 12)), (17, range(12)), (18, range(4)))
        for minor in minors
        for patch in range(3 if minor % 3 == 0 else 2)
    ]
    tags: list[str] = ["latest", "bleeding", "x86_64-bleeding", "arm64-bleeding", "x86_64-latest"]
    for version in versions:
        tags += [
            version,
            f"x86_64-{version}",
            f"arm64-{version}",
            f"s390x-{version}",
            f"alpine3.19-x86_64-{version}",
            f"ubuntu-x86_64-{version}",
        ]
        tags.append(f"{version}-rc1")
    return tags


def expected_helper_tags(versions: Sequence[str] | None = None, top_x: int = 5) -> list[str]:
    """The ``^v\\d+\\.\\d+\\.\\d+$`` tags, newest version first, as the documented policy keeps them."""
    plain = [t for t in runner_helper_tags(versions) if re.fullmatch(r"v\d+\.\d+\.\d+", t)]
    plain.sort(key=lambda t: tuple(int(p) for p in t[1:].split(".")), reverse=True)
    return plain[:top_x]


def exposition(series: Sequence[Series], metric: str = METRIC) -> str:
    """The Prometheus text exposition of ``series`` (what a scrape target serves)."""
    lines = [f"# TYPE {metric} gauge"]
    for s in series:
        labels = ",".join(
            f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
            for k, v in sorted(s.labels.items())
        )
        lines.append(f"{metric}{{{labels}}} {s.value!r}")
    return "\n".join(lines) + "\n"


def sample_times(*, past: float = 600.0, future: float = 3600.0, step: float = 120.0) -> list[float]:
    """Timestamps from ``past`` seconds ago to ``future`` seconds ahead, ``step`` apart.

    Instant queries look back five minutes, so data that only reached *now* would vanish five
    minutes later; the demo keeps answering for as long as ``future`` covers.
    """
    now = math.floor(time.time() / 60) * 60
    count = int((past + future) // step) + 1
    return [now - past + i * step for i in range(count)]


def samples(series: Sequence[Series], times: Sequence[float], metric: str = METRIC) -> list[Sample]:
    """Every series at every timestamp, as samples for :func:`devtools.prometheus.start_prometheus`."""
    return [Sample(metric, s.labels, s.value, t) for s in series for t in times]
