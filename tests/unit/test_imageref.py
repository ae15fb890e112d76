"""Image references follow the distribution grammar and Docker's normalization."""

from __future__ import annotations

import pytest

from drop_operator.imageref import ImageReference, InvalidReferenceError, is_valid_path, normalize, parse

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        ("docker.io/library/nginx:1.25", "docker.io/library/nginx:1.25"),
        ("index.docker.io/library/nginx:1.25", "docker.io/library/nginx:1.25"),
        ("library/nginx:1.25", "docker.io/library/nginx:1.25"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
        ("localhost/app:1", "localhost/app:1"),
        ("localhost:5000/app:1", "localhost:5000/app:1"),
        ("127.0.0.1:5000/a/b/c:v1", "127.0.0.1:5000/a/b/c:v1"),
        ("Registry.Example.COM/team/app:V1", "registry.example.com/team/app:V1"),
        (f"nginx@{DIGEST}", f"docker.io/library/nginx@{DIGEST}"),
        (f"nginx:1.25@{DIGEST}", f"docker.io/library/nginx:1.25@{DIGEST}"),
        (
            "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:x86_64-v17.5.0",
            "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:x86_64-v17.5.0",
        ),
        ("[::1]:5000/app:1", "[::1]:5000/app:1"),
        ("a__b/c-d--e.f_g:t", "docker.io/a__b/c-d--e.f_g:t"),
    ],
)
def test_normalizes(given: str, expected: str) -> None:
    assert normalize(given) == expected


def test_equal_references_are_equal_objects() -> None:
    assert parse("nginx:1.25") == parse("docker.io/library/nginx:1.25")
    assert parse("nginx:1.25") != parse("nginx:1.26")


def test_default_tag_only_when_asked() -> None:
    assert parse("nginx").tag is None
    assert parse("nginx", default_tag="latest").name == "docker.io/library/nginx:latest"
    assert parse(f"nginx@{DIGEST}", default_tag="latest").tag is None


def test_parts() -> None:
    ref = ImageReference.parse("localhost:5000/team/app:v1@" + DIGEST)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("localhost:5000", "team/app", "v1", DIGEST)
    assert ref.repository == "localhost:5000/team/app"
    assert str(ref) == ref.name == f"localhost:5000/team/app:v1@{DIGEST}"
    assert parse("docker.io/library/nginx:1").familiar == "nginx:1"
    assert parse("nginx:1").with_tag("2").name == "docker.io/library/nginx:2"


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("", "empty"),
        (" nginx", "whitespace"),
        ("nginx :1", "whitespace"),
        ("Nginx:1", "lowercase"),
        ("team/App:1", "lowercase"),
        ("nginx:-bad", "invalid tag"),
        ("nginx:" + "t" * 129, "invalid tag"),
        ("nginx@sha256:abc", "digest"),
        ("nginx@md5:" + "a" * 32, "digest"),
        ("nginx@sha256:" + "A" * 64, "digest"),
        ("sha256:" + "b" * 64, "image ID"),
        ("b" * 64, "image ID"),
        ("https://registry.example.com/app:1", "scheme"),
        ("registry.example.com/:1", "repository path"),
        ("a//b:1", "repository path"),
        ("-host.example.com/app:1", "registry host"),
        (":1", "missing repository"),
        ("registry.example.com/" + "a" * 250 + ":1", "longer than 255"),
    ],
)
def test_rejects_invalid(given: str, fragment: str) -> None:
    with pytest.raises(InvalidReferenceError) as err:
        parse(given)
    assert fragment in str(err.value)
    assert err.value.reference == given


def test_with_tag_validates() -> None:
    with pytest.raises(InvalidReferenceError):
        parse("nginx").with_tag("bad tag")


def test_is_valid_path() -> None:
    assert is_valid_path("gitlab-org/gitlab-runner/gitlab-runner-helper")
    assert not is_valid_path("Gitlab-org/x")
    assert not is_valid_path("a/")
