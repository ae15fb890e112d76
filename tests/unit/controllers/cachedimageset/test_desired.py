"""The desired set: normalized, deduplicated union; invalid references set aside with a reason."""

from __future__ import annotations

from drop_operator.controllers.cachedimageset.desired import ImageKey, child_key, compute_desired, image_key

DIGEST = "sha256:" + "0123456789abcdef" * 4


def test_static_and_discovered_overlap_counts_once() -> None:
    desired = compute_desired(
        ["nginx:1.25", "docker.io/library/nginx:1.25", "redis"],
        ["docker.io/library/nginx:1.25", "index.docker.io/library/redis:latest", "ghcr.io/a/b:2"],
    )
    assert list(desired.images) == [
        "docker.io/library/nginx:1.25",
        "docker.io/library/redis:latest",
        "ghcr.io/a/b:2",
    ]
    assert len(desired) == 3
    assert not desired.invalid_static
    assert not desired.invalid_discovered


def test_invalid_references_are_reported_not_desired() -> None:
    desired = compute_desired(["Nginx/Upper:1", "ok:1", "ok:1", "bad tag:1", "Nginx/Upper:1"], ["::"])
    assert list(desired.images) == ["docker.io/library/ok:1"]
    assert [i.reference for i in desired.invalid_static] == ["Nginx/Upper:1", "bad tag:1"]
    assert all(i.reason for i in desired.invalid_static)
    assert [i.reference for i in desired.invalid_discovered] == ["::"]


def test_digest_pins_the_image_even_with_a_tag() -> None:
    assert image_key(f"nginx:1.25@{DIGEST}") == ImageKey("docker.io/library/nginx", None, DIGEST)
    assert image_key(f"nginx@{DIGEST}").spec() == {"image": "docker.io/library/nginx", "digest": DIGEST}
    assert image_key("nginx").spec() == {"image": "docker.io/library/nginx", "tag": "latest"}


def test_child_key_reads_the_spec_and_normalizes_it() -> None:
    assert child_key({"spec": {"image": "nginx", "tag": "1.25"}}) == image_key("nginx:1.25")
    assert child_key({"spec": {"image": "nginx"}}) == image_key("nginx:latest")
    assert child_key({"spec": {"image": "docker.io/library/nginx", "digest": DIGEST}}) == image_key(
        f"nginx@{DIGEST}"
    )
    assert child_key({"spec": {"image": "docker.io/library/Upper", "tag": "1"}}) is None
    assert child_key({"spec": {}}) is None
