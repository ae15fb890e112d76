"""Image references follow the distribution grammar and Docker's normalization."""

from __future__ import annotations

import pytest

from drop_operator.imageref import (
    ImageReference,
    InvalidReferenceError,
    is_artifact_tag,
    is_valid_path,
    normalize,
    parse,
    registry_api_host,
    registry_name,
)

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


# --- registry hosts: the API host is not always the image's registry name ----------------------


@pytest.mark.parametrize(
    ("api_host", "name"),
    [
        ("registry-1.docker.io", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("registry.hub.docker.com", "docker.io"),
        ("Registry-1.Docker.IO", "docker.io"),
        ("docker.io", "docker.io"),
        ("registry-1.docker.io:5000", "registry-1.docker.io:5000"),  # another port is another server
        ("registry.gitlab.com", "registry.gitlab.com"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
    ],
)
def test_registry_name_of_api_host(api_host: str, name: str) -> None:
    assert registry_name(api_host) == name


def test_registry_api_host_of_name() -> None:
    assert registry_api_host("docker.io") == "registry-1.docker.io"
    assert registry_api_host("registry.gitlab.com") == "registry.gitlab.com"
    assert registry_name(registry_api_host("docker.io")) == "docker.io"


def test_only_the_legacy_index_is_rewritten_inside_a_reference() -> None:
    # Runtimes store a pull of `registry-1.docker.io/...` under that name; so must the operator.
    assert (
        normalize("registry-1.docker.io/library/nginx:1.27.3") == "registry-1.docker.io/library/nginx:1.27.3"
    )
    assert normalize("index.docker.io/library/nginx:1.27.3") == "docker.io/library/nginx:1.27.3"


# --- tags that are not runnable images -------------------------------------------------------

HEX = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"


@pytest.mark.parametrize(
    "tag",
    [
        f"sha256-{HEX}.sig",  # cosign signature
        f"sha256-{HEX}.att",  # cosign attestation
        f"sha256-{HEX}.sbom",  # cosign SBOM
        f"sha256-{HEX}",  # OCI referrers tag schema fallback (cosign, notation, oras)
        f"sha512-{HEX}",  # the schema truncates longer digests to 64 characters
        f"sha512-{HEX}{HEX}.sig",
        f"sha256-{HEX}.custom-attachment",
    ],
)
def test_artifact_tags(tag: str) -> None:
    assert is_artifact_tag(tag)


@pytest.mark.parametrize(
    "tag",
    [
        "1.27.3",
        "latest",
        "sha-860c190",
        "sha256",
        "sha256-0a1b2c3",
        f"v1-{HEX}",
        f"sha256-{HEX.upper()}",
        "x86_64-v17.5.0",
    ],
)
def test_runnable_tags(tag: str) -> None:
    assert not is_artifact_tag(tag)
