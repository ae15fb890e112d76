"""The documentation's two DiscoveryPolicies, end to end.

DiscoveryPolicy status (ranked, filtered, templated) -> CachedImageSet -> CachedImage children ->
paced pull pods on every node -> every CachedImage Ready. The policies are ``examples/`` verbatim
except for where their sources are; only the PullPolicy is faster than the example's, because
pacing is measured by the node-caching tests and here only the outcome matters.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest

from drop_operator.imageref import normalize
from e2e.environment import Environment
from e2e.kube import PodWatch, condition, eventually, status
from e2e.scenario import children, policy

HELPER_IMAGE = "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper"


def expected_popular(env: Environment) -> list[tuple[str, int]]:
    return [(normalize(image), count) for image, count in env.expected_ranking()]


def expected_helpers(env: Environment) -> list[str]:
    return [f"{HELPER_IMAGE}:x86_64-{tag}" for tag in env.expected_helper_tags()]


def test_prometheus_policy_ranks_the_most_used_images(env: Environment, applied: None) -> None:
    want = expected_popular(env)

    def discovered() -> list[tuple[str, int]] | None:
        images = status(policy(env, "popular-build-images")).get("discoveredImages") or []
        got = [(item["image"], round(float(item["score"]))) for item in images]
        return got if got == want else None

    eventually(
        discovered,
        within=60,
        what=lambda: f"popular-build-images status: {status(policy(env, 'popular-build-images'))}",
    )
    obj = policy(env, "popular-build-images")
    assert status(obj)["imageCount"] == len(want)
    assert condition(obj, "Ready")["status"] == "True"
    assert condition(obj, "SourcesHealthy")["status"] == "True"
    # The seed's imageFilter keeps every ECR image out, however popular.
    assert not [image for image, _ in discovered() or [] if ".amazonaws.com/" in image]


def test_registry_policy_spells_images_by_the_template(env: Environment, applied: None) -> None:
    want = expected_helpers(env)

    def discovered() -> list[str] | None:
        images = status(policy(env, "gitlab-helpers")).get("discoveredImages") or []
        got = [item["image"] for item in images]
        return got if got == want else None

    eventually(
        discovered,
        within=60,
        what=lambda: f"gitlab-helpers status: {status(policy(env, 'gitlab-helpers'))}, want {want}",
    )
    assert condition(policy(env, "gitlab-helpers"), "SourcesHealthy")["status"] == "True"


@pytest.mark.parametrize("set_name", ["popular-build-images", "gitlab-helpers"])
def test_sets_create_one_cached_image_per_discovered_image(
    env: Environment, applied: None, set_name: str
) -> None:
    want = (
        {image for image, _ in expected_popular(env)}
        if set_name == "popular-build-images"
        else set(expected_helpers(env))
    )
    eventually(
        lambda: set(children(env, set_name)) == want,
        within=60,
        what=lambda: f"children of {set_name}: {sorted(children(env, set_name))}, want {sorted(want)}",
    )
    image_set = env.kubectl.get("cachedimageset", set_name)
    assert image_set is not None
    for child in children(env, set_name).values():
        owners = child["metadata"].get("ownerReferences") or []
        assert [(o["kind"], o["name"], o.get("controller")) for o in owners] == [
            ("CachedImageSet", set_name, True)
        ], child["metadata"]
        assert child["spec"].get("pullPolicyRef", {}).get("name") == "gentle"


@pytest.mark.parametrize("set_name", ["popular-build-images", "gitlab-helpers"])
def test_every_image_is_pulled_onto_every_node(
    env: Environment, applied: None, pull_pods: PodWatch, set_name: str
) -> None:
    nodes = len(env.nodes)

    def all_ready() -> bool:
        image_set = env.kubectl.get("cachedimageset", set_name)
        items = children(env, set_name)
        return (
            bool(items)
            and status(image_set).get("desired") == len(items)
            and status(image_set).get("ready") == len(items)
            and all(
                status(c).get("cachedNodes") == nodes and condition(c, "Ready").get("status") == "True"
                for c in items.values()
            )
        )

    def report() -> str:
        rows = [
            f"{ref}: {status(c).get('cachedNodes')}/{status(c).get('targetNodes')} "
            f"{condition(c, 'Ready').get('reason')}"
            for ref, c in sorted(children(env, set_name).items())
        ]
        image_set = env.kubectl.get("cachedimageset", set_name)
        return f"set status {status(image_set)}\n" + "\n".join(rows)

    eventually(all_ready, within=120 * env.patience, what=report)
    items = children(env, set_name)
    for child in items.values():
        assert status(child)["targetNodes"] == nodes
        assert status(child).get("failedNodes", 0) == 0
    # Caching happened through pull pods. Simulated nodes report no images, so every image needed
    # one per node; real nodes may already hold some (the suite's own Prometheus pod runs busybox).
    seen = pull_pods.by_label("drop.corewire.io/cachedimage")
    if env.nodes_start_empty:
        for child in items.values():
            name = child["metadata"]["name"]
            assert len(seen.get(name, set())) >= nodes, f"pull pods seen for {name}: {seen.get(name)}"
    else:
        assert any(child["metadata"]["name"] in seen for child in items.values()), seen
    image_set = env.kubectl.get("cachedimageset", set_name)
    assert condition(image_set, "Ready")["status"] == "True"


@pytest.mark.parametrize("set_name", ["popular-build-images", "gitlab-helpers"])
def test_real_nodes_hold_every_cached_image(env: Environment, applied: None, set_name: str) -> None:
    """What ``kubectl get cachedimages`` says is what the real nodes' containerd stores hold, and
    what their kubelets report in ``node.status.images`` (refreshed about every 30 s; at most five
    names per image, so an image is matched by the content its names point to)."""
    items = children(env, set_name)
    assert items, f"{set_name} has no children"
    for node in env.real_nodes:
        stored = node.images()
        for reference, child in items.items():
            assert status(child).get("cachedNodes") == len(env.nodes), (reference, status(child))
            assert reference in stored, f"{reference} is cached by status but not in {node.name}'s store"

        def unreported(name: str = node.name, stored: dict[str, str] = stored) -> list[str]:
            names = {
                image_name
                for image in status(env.kubectl.get("node", name)).get("images") or []
                for image_name in image.get("names", [])
            }
            contents = {stored[n] for n in names if n in stored}
            return sorted(ref for ref in items if stored[ref] not in contents)

        eventually(
            functools.partial(_none_left, unreported),
            within=90,
            what=functools.partial(_report, node.name, unreported),
        )


def _none_left(missing: Callable[[], list[str]]) -> bool:
    return not missing()


def _report(name: str, missing: Callable[[], list[str]]) -> str:
    return f"{name} to report {missing()} in node.status.images"
