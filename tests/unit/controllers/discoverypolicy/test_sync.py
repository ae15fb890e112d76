"""Folding source outcomes into the status: ranking, last-known-good merge, stale lists kept, conditions."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from drop_operator.api.discoverypolicy import DiscoveryPolicySpec, DiscoveryPolicyStatus
from drop_operator.api.meta import find_condition
from drop_operator.controllers.discoverypolicy.sync import (
    DROP_ARTIFACT_TAG,
    DROP_EXCLUDED,
    DROP_INVALID_REFERENCE,
    RawOutcome,
    SyncOutcome,
    apply_outcomes,
    compile_filter,
)
from drop_operator.discovery.errors import Reason, SourceError
from drop_operator.discovery.source import Candidate, SourceResult

T0 = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def spec(**overrides: Any) -> DiscoveryPolicySpec:
    data: dict[str, Any] = {
        "interval": "1h",
        "topX": 3,
        "sources": [
            {"type": "prometheus", "prometheus": {"endpoint": "http://127.0.0.1:9", "query": "q"}},
            {
                "type": "registry",
                "weight": 2,
                "registry": {"url": "http://127.0.0.1:9", "repositories": ["team/app"]},
            },
        ],
    }
    data.update(overrides)
    return DiscoveryPolicySpec.model_validate(data)


def ok(
    name: str, type_: str, *candidates: tuple[str, float], dropped: dict[str, int] | None = None
) -> RawOutcome:
    result = SourceResult(candidates=[Candidate(i, s) for i, s in candidates], dropped=Counter(dropped or {}))
    return RawOutcome(name, type_, result)  # type: ignore[arg-type]


def failed(name: str, type_: str, reason: str, message: str = "boom") -> RawOutcome:
    return RawOutcome(name, type_, None, reason, message)  # type: ignore[arg-type]


def sync(
    s: DiscoveryPolicySpec,
    previous: DiscoveryPolicyStatus,
    *outcomes: RawOutcome,
    now: datetime = T0,
    full: bool = True,
    generation: int = 1,
) -> SyncOutcome:
    return apply_outcomes(
        spec=s,
        generation=generation,
        previous=previous,
        outcomes={o.name: o for o in outcomes},
        image_filter=compile_filter(s),
        full=full,
        now=now,
    )


def images(status: DiscoveryPolicyStatus) -> list[tuple[str, float, list[str]]]:
    return [(i.image, i.score, i.sources) for i in status.discovered_images]


def condition(status: DiscoveryPolicyStatus, type_: str) -> tuple[str, str, str]:
    found = find_condition(status.conditions, type_)
    assert found is not None
    return found.status, found.reason, found.message


def healthy_first_sync() -> SyncOutcome:
    return sync(
        spec(),
        DiscoveryPolicyStatus(),
        ok(
            "prometheus-0",
            "prometheus",
            ("nginx:1.25", 5),
            ("docker.io/library/nginx:1.25", 1),
            ("redis:7", 4),
        ),
        ok("registry-1", "registry", ("127.0.0.1:9/team/app:2", 2), ("127.0.0.1:9/team/app:1", 1)),
    )


def test_first_sync_normalizes_merges_weights_and_keeps_top_x() -> None:
    out = healthy_first_sync()
    st = out.status
    assert images(st) == [
        ("docker.io/library/nginx:1.25", 6.0, ["prometheus-0"]),
        ("127.0.0.1:9/team/app:2", 4.0, ["registry-1"]),  # equal scores: ordered by name
        ("docker.io/library/redis:7", 4.0, ["prometheus-0"]),
    ]
    assert st.image_count == 3
    assert st.observed_generation == 1 and st.last_sync_time == T0
    by_name = {s.name: s for s in st.sources}
    assert by_name["prometheus-0"].healthy and by_name["prometheus-0"].images_found == 2
    # Stored per source: its own (unweighted) scores, normalized.
    assert [(i.image, i.score) for i in by_name["registry-1"].images] == [
        ("127.0.0.1:9/team/app:2", 2.0),
        ("127.0.0.1:9/team/app:1", 1.0),
    ]
    assert condition(st, "Ready")[:2] == ("True", "Discovered")
    assert condition(st, "SourcesHealthy")[:2] == ("True", "AllSourcesHealthy")
    assert all(c.observed_generation == 1 for c in st.conditions)
    assert not out.kept_previous_images


def test_one_source_failing_keeps_its_last_known_good_images_in_the_merge() -> None:
    first = healthy_first_sync().status
    later = T0 + timedelta(hours=1)
    out = sync(
        spec(),
        first,
        ok("prometheus-0", "prometheus", ("redis:7", 10)),
        failed("registry-1", "registry", "Unauthorized", "HTTP 401 from registry"),
        now=later,
    )
    st = out.status
    assert images(st) == [
        ("docker.io/library/redis:7", 10.0, ["prometheus-0"]),
        ("127.0.0.1:9/team/app:2", 4.0, ["registry-1"]),
        ("127.0.0.1:9/team/app:1", 2.0, ["registry-1"]),
    ]
    reg = next(s for s in st.sources if s.name == "registry-1")
    assert not reg.healthy
    assert reg.reason == "Unauthorized"
    assert reg.last_success_time == T0 and reg.last_sync_time == later
    status, reason, message = condition(st, "SourcesHealthy")
    assert (status, reason) == ("False", "Unauthorized")
    assert "registry-1: Unauthorized: HTTP 401 from registry" in message
    assert "stale since 2025-06-01T12:00:00Z" in message
    assert "prometheus-0" not in message
    assert condition(st, "Ready")[:2] == ("True", "PartiallyDiscovered")


def test_every_source_failing_keeps_the_published_list_unchanged() -> None:
    first = healthy_first_sync().status
    later = T0 + timedelta(hours=1)
    out = sync(
        spec(topX=1),  # even a spec change cannot empty or reshuffle the list while nothing answers
        first,
        failed("prometheus-0", "prometheus", "ConnectionError"),
        failed("registry-1", "registry", "Timeout"),
        now=later,
        generation=2,
    )
    st = out.status
    assert out.all_failed and out.kept_previous_images
    assert st.discovered_images == first.discovered_images
    assert st.image_count == 3
    assert st.last_sync_time == later and st.observed_generation == 2
    status, reason, message = condition(st, "Ready")
    assert (status, reason) == ("False", "AllSourcesFailed")
    assert "keeping the 3 images published at 2025-06-01T12:00:00Z" in message
    healthy = condition(st, "SourcesHealthy")
    assert healthy[:2] == ("False", "SourceFailed")
    assert "prometheus-0: ConnectionError" in healthy[2] and "registry-1: Timeout" in healthy[2]


def test_failing_from_the_start_publishes_nothing_and_says_so() -> None:
    out = sync(
        spec(),
        DiscoveryPolicyStatus(),
        failed("prometheus-0", "prometheus", "DNSError", "cannot resolve mimir.example.com"),
        failed("registry-1", "registry", "DNSError"),
    )
    assert out.status.discovered_images == []
    status, reason, message = condition(out.status, "Ready")
    assert (status, reason) == ("False", "AllSourcesFailed")
    assert "no images discovered yet" in message
    healthy = condition(out.status, "SourcesHealthy")
    assert healthy[1] == "DNSError"
    assert "no successful sync yet" in healthy[2]


def test_retry_pass_changes_only_the_retried_source_and_not_the_sync_time() -> None:
    first = healthy_first_sync().status
    broken = sync(
        spec(),
        first,
        ok("prometheus-0", "prometheus", ("redis:7", 4)),
        failed("registry-1", "registry", "Timeout"),
    )
    later = T0 + timedelta(minutes=1)
    out = sync(
        spec(),
        broken.status,
        ok("registry-1", "registry", ("127.0.0.1:9/team/app:3", 1)),
        now=later,
        full=False,
    )
    st = out.status
    assert st.last_sync_time == T0
    prom = next(s for s in st.sources if s.name == "prometheus-0")
    assert prom == next(s for s in broken.status.sources if s.name == "prometheus-0")
    assert condition(st, "SourcesHealthy")[:2] == ("True", "AllSourcesHealthy")
    assert ("127.0.0.1:9/team/app:3", 2.0, ["registry-1"]) in images(st)


def test_invalid_references_and_filtered_images_are_counted_not_ranked() -> None:
    s = spec(imageFilter="^(?!.*ecr\\..*amazonaws\\.com).*$")
    out = sync(
        s,
        DiscoveryPolicyStatus(),
        ok(
            "prometheus-0",
            "prometheus",
            ("123.dkr.ecr.eu-west-1.amazonaws.com/app:1", 9),
            ("Not A Reference", 8),
            ("sha256:" + "a" * 64, 7),
            ("nginx", 1),
            dropped={"MissingImageLabel": 2},
        ),
        ok("registry-1", "registry"),
    )
    prom = next(x for x in out.status.sources if x.name == "prometheus-0")
    dropped = {d.reason: d.count for d in prom.dropped}
    assert dropped == {"MissingImageLabel": 2, DROP_INVALID_REFERENCE: 2, DROP_EXCLUDED: 1}
    assert images(out.status) == [("docker.io/library/nginx:latest", 1.0, ["prometheus-0"])]


def test_removed_source_takes_its_images_along() -> None:
    first = healthy_first_sync().status
    only_prom = spec(
        sources=[{"type": "prometheus", "prometheus": {"endpoint": "http://127.0.0.1:9", "query": "q"}}]
    )
    out = sync(only_prom, first, ok("prometheus-0", "prometheus", ("redis:7", 1)), generation=2)
    assert [s.name for s in out.status.sources] == ["prometheus-0"]
    assert images(out.status) == [("docker.io/library/redis:7", 1.0, ["prometheus-0"])]


def test_catastrophic_image_filter_keeps_everything_and_reports_invalid_image_filter() -> None:
    first = healthy_first_sync().status
    s = spec(imageFilter=r"^docker\.io/library/(a|aa)+:latest$")
    out = sync(
        s,
        first,
        ok("prometheus-0", "prometheus", ("a" * 60 + "b", 1), ("redis:7", 3)),
        ok("registry-1", "registry"),
    )
    assert out.image_filter_error is not None
    assert out.status.discovered_images == first.discovered_images
    status, reason, message = condition(out.status, "Ready")
    assert (status, reason) == ("False", "InvalidImageFilter")
    assert "imageFilter" in message
    prom = next(x for x in out.status.sources if x.name == "prometheus-0")
    assert prom.healthy
    assert prom.images == next(x for x in first.sources if x.name == "prometheus-0").images


def test_uncompilable_filter_reports_before_any_query() -> None:
    first = healthy_first_sync().status
    out = apply_outcomes(
        spec=spec(imageFilter="(unclosed"),
        generation=2,
        previous=first,
        outcomes={},
        image_filter=None,
        image_filter_error="imageFilter '(unclosed' is not a valid regular expression",
        full=True,
        now=T0 + timedelta(minutes=5),
    )
    assert out.status.discovered_images == first.discovered_images
    assert condition(out.status, "Ready")[1] == "InvalidImageFilter"
    assert out.status.sources == first.sources


def test_condition_transition_time_only_moves_when_status_flips() -> None:
    first = healthy_first_sync().status
    again = sync(
        spec(),
        first,
        ok("prometheus-0", "prometheus", ("redis:7", 1)),
        ok("registry-1", "registry"),
        now=T0 + timedelta(hours=1),
    )
    ready_before = find_condition(first.conditions, "Ready")
    ready_after = find_condition(again.status.conditions, "Ready")
    assert ready_before is not None and ready_after is not None
    assert ready_after.last_transition_time == ready_before.last_transition_time


# --- an empty answer is an answer ------------------------------------------------------------


def test_an_empty_answer_replaces_the_list_and_is_ready() -> None:
    first = healthy_first_sync().status
    only_prom = spec(
        sources=[{"type": "prometheus", "prometheus": {"endpoint": "http://127.0.0.1:9", "query": "q"}}]
    )
    out = sync(only_prom, first, ok("prometheus-0", "prometheus"), generation=2)
    assert out.status.discovered_images == [] and not out.all_failed and not out.kept_previous_images
    assert condition(out.status, "Ready")[:2] == ("True", "Discovered")
    assert condition(out.status, "SourcesHealthy")[:2] == ("True", "AllSourcesHealthy")


def test_signature_tags_reported_by_any_source_are_counted_not_ranked() -> None:
    digest_tag = "sha256-" + "0a1b2c3d" * 8
    out = sync(
        spec(),
        DiscoveryPolicyStatus(),
        ok("prometheus-0", "prometheus", (f"nginx:{digest_tag}.sig", 9), ("nginx:1", 1)),
        ok("registry-1", "registry"),
    )
    prom = next(x for x in out.status.sources if x.name == "prometheus-0")
    assert {d.reason: d.count for d in prom.dropped} == {DROP_ARTIFACT_TAG: 1}
    assert images(out.status) == [("docker.io/library/nginx:1", 1.0, ["prometheus-0"])]


# --- a registry source whose repositories fail one by one --------------------------------------

REPOS = spec(
    topX=10,
    sources=[
        {
            "type": "registry",
            "name": "helpers",
            "registry": {"url": "http://127.0.0.1:9", "repositories": ["team/a", "team/b", "team/c"]},
        }
    ],
)


def registry_ok(*repos: str, failed: dict[str, SourceError] | None = None) -> RawOutcome:
    """A registry outcome: tags 2 and 1 of each answering repository, and the failing ones."""
    result = SourceResult(parts=3, failed_parts=dict(failed or {}))
    for repo in repos:
        for tag, score in (("2", 2.0), ("1", 1.0)):
            image = f"127.0.0.1:9/{repo}:{tag}"
            result.candidates.append(Candidate(image, score))
            result.part_of[image] = repo
    return RawOutcome("helpers", "registry", result)


def test_one_missing_repository_keeps_its_images_and_the_others_stay_current() -> None:
    first = sync(REPOS, DiscoveryPolicyStatus(), registry_ok("team/a", "team/b", "team/c")).status
    stored = next(s for s in first.sources if s.name == "helpers")
    assert {i.repository for i in stored.images} == {"team/a", "team/b", "team/c"}

    later = T0 + timedelta(hours=1)
    gone = SourceError(Reason.NOT_FOUND, "HTTP 404 from registry: NAME_UNKNOWN")
    result = registry_ok("team/a", "team/c", failed={"team/b": gone}).result
    assert result is not None
    # team/a moved on to tag 3; team/c is unchanged; team/b answers 404.
    result.candidates = [c for c in result.candidates if not c.image.startswith("127.0.0.1:9/team/a")]
    result.candidates += [Candidate("127.0.0.1:9/team/a:3", 2.0), Candidate("127.0.0.1:9/team/a:2", 1.0)]
    result.part_of.update({"127.0.0.1:9/team/a:3": "team/a"})
    out = sync(REPOS, first, RawOutcome("helpers", "registry", result), now=later)
    st = out.status
    assert {i[0] for i in images(st)} == {
        "127.0.0.1:9/team/a:3",
        "127.0.0.1:9/team/a:2",
        "127.0.0.1:9/team/b:2",  # the failing repository's last good tags
        "127.0.0.1:9/team/b:1",
        "127.0.0.1:9/team/c:2",
        "127.0.0.1:9/team/c:1",
    }
    entry = next(s for s in st.sources if s.name == "helpers")
    assert not entry.healthy and entry.reason == "NotFound"
    assert entry.last_success_time == later and entry.last_sync_time == later
    assert entry.last_error is not None and entry.last_error.startswith(
        "1 of 3 failing, the others answered: team/b"
    )
    assert entry.failing_repositories is not None
    [repo] = entry.failing_repositories
    assert (repo.name, repo.reason, repo.last_success_time) == ("team/b", "NotFound", T0)
    assert "NAME_UNKNOWN" in (repo.last_error or "")
    assert not out.all_failed and not out.kept_previous_images
    assert condition(st, "Ready")[:2] == ("True", "PartiallyDiscovered")
    status, reason, message = condition(st, "SourcesHealthy")
    assert (status, reason) == ("False", "NotFound")
    assert "helpers: NotFound: 1 of 3 failing" in message and "the other repositories are current" in message
    assert out.runs["helpers"].answered and not out.runs["helpers"].ok  # retried like a failure

    # Still missing an hour later: its own "last success" stays at the time it last answered.
    again = sync(
        REPOS, st, registry_ok("team/a", "team/c", failed={"team/b": gone}), now=later + timedelta(hours=1)
    )
    entry = next(s for s in again.status.sources if s.name == "helpers")
    assert entry.failing_repositories is not None and entry.failing_repositories[0].last_success_time == T0
    assert "127.0.0.1:9/team/b:2" in {i[0] for i in images(again.status)}

    # The whole registry down next: everything kept, failing repositories still listed.
    down = sync(
        REPOS, again.status, failed("helpers", "registry", "ConnectionError"), now=later + timedelta(hours=2)
    )
    assert down.status.discovered_images == again.status.discovered_images
    assert next(s for s in down.status.sources if s.name == "helpers").failing_repositories

    # Back: the repository answers again and the entry is healthy with no failing repositories.
    back = sync(REPOS, down.status, registry_ok("team/a", "team/b", "team/c"), now=later + timedelta(hours=3))
    entry = next(s for s in back.status.sources if s.name == "helpers")
    assert entry.healthy and entry.failing_repositories is None and entry.reason is None
    assert condition(back.status, "Ready")[:2] == ("True", "Discovered")


def test_a_filter_or_template_that_drops_every_candidate_is_not_ready() -> None:
    """Not silently Ready with 0 images; a healthy empty answer still is."""
    s = spec(imageFilter="^ghcr\\.io/")
    out = sync(
        s,
        DiscoveryPolicyStatus(),
        ok("prometheus-0", "prometheus", ("nginx:1.25", 5), ("redis:7", 4)),
        ok("registry-1", "registry", dropped={"FilteredOut": 7}),  # tagFilter or template: nothing kept
    )
    assert out.status.image_count == 0
    status, reason, message = condition(out.status, "Ready")
    assert (status, reason) == ("False", "AllCandidatesDropped")
    assert f"{DROP_EXCLUDED} 2" in message and "FilteredOut 7" in message
    assert condition(out.status, "SourcesHealthy")[0] == "True"  # the sources are fine; the policy is not

    # template output that is no image reference at all
    bad = sync(
        spec(),
        DiscoveryPolicyStatus(),
        ok("prometheus-0", "prometheus", ("Not A Reference", 1)),
        ok("registry-1", "registry"),
    )
    assert condition(bad.status, "Ready")[:2] == ("False", "AllCandidatesDropped")
    assert f"{DROP_INVALID_REFERENCE} 1" in condition(bad.status, "Ready")[2]

    # sources that answered "nothing" are a healthy, Ready, empty answer
    empty = sync(
        spec(), DiscoveryPolicyStatus(), ok("prometheus-0", "prometheus"), ok("registry-1", "registry")
    )
    assert condition(empty.status, "Ready")[:2] == ("True", "Discovered")
