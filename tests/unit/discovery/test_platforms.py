"""Platforms of a manifest (OCI image-index / image-manifest specs), pull-Secret credentials, and
where a registry's API is reached."""

from __future__ import annotations

import base64
import json

import pytest

from drop_operator.discovery.errors import Reason, SourceError
from drop_operator.discovery.http import Credentials
from drop_operator.discovery.platforms import (
    Platform,
    docker_config_credentials,
    platforms_of_manifest,
    registry_url,
)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DIGEST = "sha256:" + "a" * 64


def entry(os: str, arch: str, variant: str | None = None) -> dict[str, object]:
    platform: dict[str, str] = {"os": os, "architecture": arch}
    if variant:
        platform["variant"] = variant
    return {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": DIGEST,
        "size": 1,
        "platform": platform,
    }


def test_oci_index_lists_its_platforms_and_ignores_attestations() -> None:
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            entry("linux", "amd64"),
            entry("linux", "arm64", "v8"),
            # BuildKit's attestation manifests: platform unknown/unknown, not runnable.
            entry("unknown", "unknown"),
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": DIGEST, "size": 1},
        ],
    }
    found = platforms_of_manifest(OCI_INDEX, json.dumps(index).encode())
    assert found == {Platform("linux", "amd64"), Platform("linux", "arm64", "v8")}
    assert sorted(map(str, found)) == ["linux/amd64", "linux/arm64/v8"]


def test_docker_manifest_list_is_an_index_too() -> None:
    doc = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [entry("linux", "arm", "v7")]}
    assert platforms_of_manifest(f"{DOCKER_LIST}; charset=utf-8", json.dumps(doc).encode()) == {
        Platform("linux", "arm", "v7")
    }


def test_generic_content_type_falls_back_to_the_document() -> None:
    doc = {"schemaVersion": 2, "manifests": [entry("windows", "amd64")]}
    assert platforms_of_manifest("application/json", json.dumps(doc).encode()) == {
        Platform("windows", "amd64")
    }


@pytest.mark.parametrize(
    "media_type",
    ["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"],
)
def test_single_manifest_points_at_its_config(media_type: str) -> None:
    doc = {"schemaVersion": 2, "config": {"mediaType": "x", "digest": DIGEST, "size": 2}, "layers": []}
    assert platforms_of_manifest(media_type, json.dumps(doc).encode()) == DIGEST


@pytest.mark.parametrize(
    ("media_type", "body"),
    [
        (OCI_INDEX, b"not json"),
        (OCI_INDEX, b"[]"),
        (OCI_INDEX, b'{"manifests": {}}'),
        ("application/vnd.oci.image.manifest.v1+json", b'{"config": {}}'),
        ("application/vnd.cncf.helm.chart.content.v1.tar+gzip", b'{"schemaVersion": 2}'),
    ],
)
def test_unusable_documents_are_invalid_responses(media_type: str, body: bytes) -> None:
    with pytest.raises(SourceError) as err:
        platforms_of_manifest(media_type, body)
    assert err.value.reason is Reason.INVALID_RESPONSE


def _config(auths: dict[str, object]) -> bytes:
    return json.dumps({"auths": auths}).encode()


def test_docker_config_by_host_url_and_auth_field() -> None:
    auth = base64.b64encode(b"bob:s3cret:with-colon").decode()
    config = _config(
        {
            "other.example": {"username": "x", "password": "y"},
            "https://registry.example:5000/v1/": {"auth": auth},
        }
    )
    assert docker_config_credentials(config, "registry.example:5000") == Credentials(
        username="bob", password="s3cret:with-colon"
    )
    assert docker_config_credentials(config, "missing.example") is None


def test_docker_hub_legacy_key_matches_docker_io() -> None:
    config = _config({"https://index.docker.io/v1/": {"username": "u", "password": "p"}})
    assert docker_config_credentials(config, "docker.io") == Credentials(username="u", password="p")


def test_docker_config_that_is_not_json_is_invalid_credentials() -> None:
    with pytest.raises(SourceError) as err:
        docker_config_credentials(b"{", "r.example")
    assert err.value.reason is Reason.INVALID_CREDENTIALS


@pytest.mark.parametrize(
    ("domain", "url"),
    [
        ("127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("localhost:5000", "http://localhost:5000"),
        ("[::1]:5000", "http://[::1]:5000"),
        ("registry.example", "https://registry.example"),
        ("10.0.0.7:5000", "https://10.0.0.7:5000"),
    ],
)
def test_loopback_registries_are_plain_http(domain: str, url: str) -> None:
    assert registry_url(domain) == url
