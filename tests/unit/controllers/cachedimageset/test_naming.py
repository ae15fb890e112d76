"""Child names are injective, valid object names and label values; long set names fit in labels."""

from __future__ import annotations

import random
import re
import string

from drop_operator.api.meta import DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN
from drop_operator.controllers.cachedimageset.desired import image_key
from drop_operator.controllers.cachedimageset.naming import MAX_NAME, child_name, readable_prefix
from drop_operator.controllers.common.labels import MAX_LABEL_VALUE, label_value

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
UID = "5f0c2b7e-8a61-4c3e-9d7a-1b2c3d4e5f60"


def name_of(reference: str, uid: str = UID) -> str:
    key = image_key(reference)
    return child_name(uid, key.reference, key.repository, key.version)


def test_same_last_segment_and_tag_in_different_repositories_get_different_names() -> None:
    a, b = name_of("a/tools:1"), name_of("b/tools:1")
    assert a != b
    assert a.startswith("tools-1-")
    assert b.startswith("tools-1-")


def test_two_spellings_of_one_image_get_one_name() -> None:
    assert name_of("nginx:1.25") == name_of("docker.io/library/nginx:1.25")
    assert name_of("nginx") == name_of("index.docker.io/library/nginx:latest")


def test_names_are_stable_and_differ_between_sets() -> None:
    assert name_of("nginx:1.25") == name_of("nginx:1.25")
    assert name_of("nginx:1.25") != name_of("nginx:1.25", uid="another-uid")


def test_readable_prefix() -> None:
    assert name_of(
        "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:x86_64-v17.5.0"
    ).startswith("gitlab-runner-helper-x86-64-v17.5.0-")
    digest = "sha256:" + "ab" * 32
    assert name_of(f"nginx@{digest}").startswith("nginx-abababababab-")
    assert readable_prefix("x/_", "", 20) == "image"


def test_random_references_give_valid_short_distinct_names() -> None:
    rng = random.Random(7)
    seen: dict[str, str] = {}
    alphabet = string.ascii_lowercase + string.digits
    for _ in range(3000):
        path = "/".join(
            "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
            + rng.choice(["", "_x", "--y", ".z"])
            for _ in range(rng.randint(1, 4))
        )
        tag = rng.choice(string.ascii_letters + "_") + "".join(
            rng.choice(string.ascii_letters + string.digits + "._-") for _ in range(rng.randint(0, 127))
        )
        host = rng.choice(["", "registry.example.com/", "localhost:5000/", "a.b-c.d:443/"])
        key = image_key(f"{host}{path}:{tag}")
        name = child_name(UID, key.reference, key.repository, key.version)
        assert len(name) <= MAX_NAME
        assert re.fullmatch(DNS_SUBDOMAIN_PATTERN, name), name
        assert LABEL_VALUE.fullmatch(name), name
        assert seen.setdefault(name, key.reference) == key.reference, (name, key.reference)


def test_label_value_keeps_short_names_and_truncates_long_ones_injectively() -> None:
    assert label_value("builds") == "builds"
    exactly = "a" * MAX_LABEL_VALUE
    assert label_value(exactly) == exactly
    long_a = "team-" + "x" * 100 + ".example.sets-a"
    long_b = "team-" + "x" * 100 + ".example.sets-b"
    va, vb = label_value(long_a), label_value(long_b)
    assert va != vb
    for value in (va, vb):
        assert len(value) <= MAX_LABEL_VALUE
        assert LABEL_VALUE.fullmatch(value)
    # A head that ends on a separator is trimmed so the value stays valid.
    tricky = "a" * 51 + "." + "b" * 200
    assert LABEL_VALUE.fullmatch(label_value(tricky))
    assert re.fullmatch(DNS_LABEL_PATTERN, label_value("c" * 200))
