"""Pure discovery rules: templates, version order, challenge and Link parsing, patterns, ranking."""

from __future__ import annotations

import math

import pytest
from yarl import URL

from drop_operator.discovery.engine import (
    ImageFilter,
    PartImage,
    SourceCandidates,
    carry_forward,
    normalized_parts,
    rank,
)
from drop_operator.discovery.errors import InvalidImageFilterError, Reason, SourceError
from drop_operator.discovery.http import Credentials
from drop_operator.discovery.prometheus import MethodMemory, parse_query_response
from drop_operator.discovery.registry import TokenCache, parse_challenges, parse_next_link
from drop_operator.discovery.source import Candidate, SourceResult
from drop_operator.discovery.template import ImageTemplate
from drop_operator.discovery.versions import is_hash_like, parse_version, sort_newest_first

CATASTROPHIC = r"^docker\.io/library/(a|aa)+:latest$"
SLOW_IMAGE = "docker.io/library/" + "a" * 60 + "b:latest"

# --- templates ------------------------------------------------------------------------------


def test_seed_template_renders_verbatim() -> None:
    template = ImageTemplate("registry.gitlab.com/{{ .Repository }}:x86_64-{{ .Tag }}")
    out = template.render({"Registry": "127.0.0.1:5000", "Repository": "a/b", "Tag": "v17.5.0"})
    assert out == "registry.gitlab.com/a/b:x86_64-v17.5.0"


def test_template_registry_and_filters() -> None:
    template = ImageTemplate('{{.Registry}}/{{ .Repository | replace("/", "-") }}:{{ .Tag | lower }}')
    assert template.render({"Registry": "r:5000", "Repository": "a/b", "Tag": "V1"}) == "r:5000/a-b:v1"


def test_go_dots_outside_expressions_are_text() -> None:
    template = ImageTemplate("reg.example.com/.x/{{ .Repository }}")
    assert template.render({"Registry": "r", "Repository": "a", "Tag": "t"}) == "reg.example.com/.x/a"


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{{ .Tag ", "syntax error"),
        ("{{ .Tag }", "syntax error"),
        ("{% if %}", "syntax error"),
        ("{{ .Tag.upper() }}", "calls"),
        ("{{ Tag.__class__ }}", "attribute"),
        ("{{ .Tag.x }}", "attribute"),
        ("{{ Tag[0] }}", "item access"),
        ("{{ .Image }}", "unknown variable 'Image'"),
        ("{{ lipsum }}", "unknown variable 'lipsum'"),
        ("{{ Tag | attr('x') }}", "filter 'attr'"),
        ("{% for t in Tag %}{{ t }}{% endfor %}", "For is not allowed"),
        ("{% set x = 1 %}", "not allowed"),
    ],
)
def test_bad_templates_are_invalid_template(template: str, fragment: str) -> None:
    with pytest.raises(SourceError) as err:
        ImageTemplate(template)
    assert err.value.reason is Reason.INVALID_TEMPLATE
    assert fragment in err.value.message


# --- versions -------------------------------------------------------------------------------


def test_versions_sort_newest_first_and_plain_tags_last() -> None:
    tags = ["x86_64-bleeding", "v17.5.0", "latest", "v17.10.1", "v17.9.0", "1.2.3-rc10", "1.2.3", "1.2.3-rc2"]
    assert sort_newest_first(tags) == [
        "v17.10.1", "v17.9.0", "v17.5.0", "1.2.3", "1.2.3-rc10", "1.2.3-rc2", "latest", "x86_64-bleeding",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("tag", "numbers"),
    [("x86_64-v17.5.0", (17, 5, 0)), ("v1", (1,)), ("1.25-alpine", (1, 25)), ("alpine-3.19", (3, 19))],
)
def test_parse_version(tag: str, numbers: tuple[int, ...]) -> None:
    version = parse_version(tag)
    assert version is not None and version.numbers == numbers


def test_no_version_in_arch_names() -> None:
    assert parse_version("x86_64-bleeding") is None
    assert parse_version("latest") is None


#: Tags docker/metadata-action writes by default: semver aliases, branch, and `sha-<short sha>`.
CI_TAGS = ["1", "1.3", "1.3.2", "1.4", "1.4.0", "latest", "main"]
CI_TAGS += ["sha-0a1b2c3", "sha-860c190", "sha-9b1e2f3", "sha-2024abc"]


def test_commit_tags_of_ci_tooling_do_not_outrank_releases() -> None:
    ordered = sort_newest_first(CI_TAGS)
    assert ordered[:3] == ["1.4.0", "1.4", "1.3.2"]
    assert ordered == [
        "1.4.0", "1.4", "1.3.2", "1.3", "1",
        "latest", "main", "sha-0a1b2c3", "sha-2024abc", "sha-860c190", "sha-9b1e2f3",
    ]  # fmt: skip


def test_gitlab_helper_revision_tags_sort_with_the_unversioned() -> None:
    tags = ["x86_64-v17.3.2", "x86_64-v17.4.1", "x86_64-v17.5.0", "x86_64-58ba2b95", "x86_64-8fa89735"]
    tags += ["x86_64-ece86343", "x86_64-latest", "x86_64-bleeding"]
    assert sort_newest_first(tags)[:3] == ["x86_64-v17.5.0", "x86_64-v17.4.1", "x86_64-v17.3.2"]


@pytest.mark.parametrize(
    "tag",
    [
        "sha-860c190",
        "git-0a1b2c3d4e5f",
        "main-2024abc",
        "x86_64-58ba2b95",
        "sha256-" + "0a1b2c3d" * 8,  # a digest-derived tag (referrers tag schema)
        "sha256-" + "0a1b2c3d" * 8 + ".sig",
        "build-ABCDEF12",
    ],
)
def test_hash_like_and_digest_derived_tags_have_no_version(tag: str) -> None:
    assert parse_version(tag) is None


@pytest.mark.parametrize(
    ("tag", "numbers"),
    [
        ("20240115", (20240115,)),  # all digits: a number, not a hash
        ("v1.2.3-0a1b2c3", (1, 2, 3)),  # a hash after a version leaves the version
        ("1.2.3-abc1234", (1, 2, 3)),
        ("sha-2024ab", (2024,)),  # 6 characters: too short to be taken for a commit hash
    ],
)
def test_versions_next_to_hash_like_tokens(tag: str, numbers: tuple[int, ...]) -> None:
    version = parse_version(tag)
    assert version is not None and version.numbers == numbers


@pytest.mark.parametrize(
    ("token", "hash_like"),
    [
        ("0a1b2c3", True),
        ("860c190", True),
        ("ece86343", True),
        ("A1B2C3D4", True),
        ("0a1b2c", False),  # 6
        ("1234567", False),  # no letter
        ("0a1b2c3g", False),  # not hex
        ("a" * 64 + "1", False),  # 65
    ],
)
def test_is_hash_like(token: str, hash_like: bool) -> None:
    assert is_hash_like(token) is hash_like


# --- challenges and links ------------------------------------------------------------------


def test_challenge_scope_with_commas_and_escapes() -> None:
    [c] = parse_challenges(
        'Bearer realm="https://auth.example.com/token",service="reg",'
        'scope="repository:a/b:pull,push",error="insufficient_scope",x="a\\"b"'
    )
    assert c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.example.com/token",
        "service": "reg",
        "scope": "repository:a/b:pull,push",
        "error": "insufficient_scope",
        "x": 'a"b',
    }


def test_several_challenges_and_unquoted_values() -> None:
    challenges = parse_challenges('Basic realm="x", Bearer realm=https://a/t , scope="a,b"')
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[1].params == {"realm": "https://a/t", "scope": "a,b"}
    assert parse_challenges("") == []


def test_next_link_as_given() -> None:
    assert parse_next_link('</v2/a/tags/list?n=2&last=b>; rel="next"') == "/v2/a/tags/list?n=2&last=b"
    assert parse_next_link("<https://h/p?t=Zm9v,YmFy%3D>; rel=next") == "https://h/p?t=Zm9v,YmFy%3D"
    assert parse_next_link('<https://h/prev>; rel="prev", <https://h/n>; rel="next"') == "https://h/n"
    assert parse_next_link('<https://h/prev>; rel="prev"') is None
    assert parse_next_link(None) is None


def test_token_cache_expiry_with_margin() -> None:
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0], margin=10)
    key = ("realm", "svc", "repository:a:pull", "id")
    cache.put(key, "tok", 60)
    assert cache.get(key) == "tok"
    now[0] += 49
    assert cache.get(key) == "tok"
    now[0] += 2
    assert cache.get(key) is None


# --- credentials -----------------------------------------------------------------------------


def test_credentials_from_secret_and_repr_hides_values() -> None:
    creds = Credentials.from_secret_data(
        {"username": b"admin", "password": "hunter2", "headers.X-Scope-OrgID": b"tenant-1", "other": "x"}
    )
    assert creds.username == "admin" and creds.password == "hunter2"
    assert creds.headers == {"X-Scope-OrgID": "tenant-1"}
    assert "hunter2" not in repr(creds) and "admin" not in repr(creds)


@pytest.mark.parametrize(
    "data",
    [{"tls.crt": "x"}, {"password": "p"}, {"headers.Bad Name": "v"}, {"headers.X": "a\r\nInjected: 1"}],
)
def test_credentials_invalid(data: dict[str, str]) -> None:
    with pytest.raises(SourceError) as err:
        Credentials.from_secret_data(data)
    assert err.value.reason is Reason.INVALID_CREDENTIALS


# --- Prometheus answer parsing ---------------------------------------------------------------


def _vector(*series: tuple[dict[str, str], str]) -> dict[str, object]:
    result = [{"metric": m, "value": [1.0, v]} for m, v in series]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def test_prometheus_drops_and_sums() -> None:
    data = _vector(
        ({"image": "nginx:1.25", "cluster": "a"}, "2"),
        ({"image": "nginx:1.25", "cluster": "b"}, "3"),
        ({"pod": "x"}, "9"),
        ({"image": ""}, "9"),
        ({"image": "nan"}, "NaN"),
        ({"image": "inf"}, "+Inf"),
        ({"image": "ninf"}, "-Inf"),
        ({"image": "junk"}, "abc"),
    )
    result = parse_query_response(data, "instant")
    assert result.candidates == [Candidate("nginx:1.25", 5.0)]
    assert result.dropped == {"MissingImageLabel": 2, "NonFiniteValue": 3, "InvalidValue": 1}
    assert result.scanned == 8


@pytest.mark.parametrize(
    ("payload", "query_type"),
    [
        ({"resultType": "vector", "result": None}, "instant"),  # Prometheus 2.0, Thanos
        ({"resultType": "matrix", "result": None}, "range"),  # Google's managed Prometheus frontend
        ({"resultType": "", "result": None}, "instant"),  # Cortex query-frontend
        ({"resultType": "", "result": None}, "range"),
        ({"resultType": "vector"}, "instant"),  # no result key at all
        ({"resultType": None, "result": []}, "instant"),
        ({"resultType": "vector", "result": []}, "instant"),  # Prometheus today
    ],
)
def test_prometheus_no_series_in_every_encoding_is_an_empty_healthy_answer(
    payload: dict[str, object], query_type: str
) -> None:
    result = parse_query_response({"status": "success", "data": payload}, query_type)  # type: ignore[arg-type]
    assert result.candidates == [] and result.dropped == {} and result.scanned == 0


def test_prometheus_series_with_null_labels_is_a_missing_image_label() -> None:
    data = {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": None, "value": [1, "2"]}]},
    }
    assert parse_query_response(data, "instant").dropped == {"MissingImageLabel": 1}


def test_prometheus_partial_answer_is_not_the_whole_truth() -> None:
    data = _vector(({"image": "nginx:1.25"}, "2"))
    data["isPartial"] = True  # VictoriaMetrics: a vmstorage node did not answer
    with pytest.raises(SourceError) as err:
        parse_query_response(data, "instant")
    assert err.value.reason is Reason.PARTIAL_RESPONSE
    assert "isPartial" in err.value.message and "1 series were not used" in err.value.message
    data["isPartial"] = False
    assert parse_query_response(data, "instant").candidates == [Candidate("nginx:1.25", 2.0)]


def test_method_memory_is_bounded_and_forgets_the_default() -> None:
    memory = MethodMemory(limit=2)
    a, b, c = (URL(f"http://h/{n}/api/v1/query") for n in "abc")
    assert memory.get(a) == ("POST", a)
    memory.remember(a, "GET", a)
    memory.remember(b, "POST", URL("https://h/b2/api/v1/query"))
    assert memory.get(a) == ("GET", a)  # a is now the most recently used
    memory.remember(c, "GET", c)
    assert memory.get(b) == ("POST", b) and memory.get(a) == ("GET", a) and len(memory) == 2
    memory.remember(a, "POST", a)  # back to the default: nothing to remember
    assert len(memory) == 1


def test_prometheus_range_takes_max_of_finite_values() -> None:
    data = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": {"image": "a:1"}, "values": [[1, "1"], [2, "NaN"], [3, "4"], [4, "2"]]}],
        },
    }
    assert parse_query_response(data, "range").candidates == [Candidate("a:1", 4.0)]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"status": "error", "errorType": "bad_data", "error": "parse error"}, Reason.INVALID_QUERY),
        ({"status": "error", "errorType": "timeout", "error": "query timed out"}, Reason.TIMEOUT),
        ({"status": "error", "errorType": "execution", "error": "boom"}, Reason.QUERY_FAILED),
        (
            {"status": "success", "data": {"resultType": "scalar", "result": [1, "2"]}},
            Reason.INVALID_QUERY_RESULT,
        ),
        ({"status": "success", "data": {"resultType": "matrix", "result": []}}, Reason.INVALID_QUERY_RESULT),
        (
            {"status": "success", "data": {"resultType": "scalar", "result": None}},
            Reason.INVALID_QUERY_RESULT,
        ),
        (
            {"status": "success", "data": {"resultType": "", "result": [{"metric": {"image": "a"}}]}},
            Reason.INVALID_QUERY_RESULT,
        ),
        ({"status": "success", "data": {"resultType": "vector", "result": "x"}}, Reason.INVALID_RESPONSE),
        ({"status": "success"}, Reason.INVALID_RESPONSE),
        ([1, 2], Reason.INVALID_RESPONSE),
    ],
)
def test_prometheus_bad_answers(data: object, reason: Reason) -> None:
    with pytest.raises(SourceError) as err:
        parse_query_response(data, "instant")
    assert err.value.reason is reason


# --- patterns and engine ---------------------------------------------------------------------


def test_seed_lookahead_filter_excludes_ecr() -> None:
    filt = ImageFilter("^(?!.*ecr\\..*amazonaws\\.com).*$")
    filt.start()
    assert filt.matches("docker.io/library/nginx:1.25")
    assert not filt.matches("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:1")


@pytest.mark.parametrize("pattern", ["(", "[a-", "a{2,1}", "*a"])
def test_invalid_image_filter(pattern: str) -> None:
    with pytest.raises(InvalidImageFilterError) as err:
        ImageFilter(pattern)
    assert err.value.reason is Reason.INVALID_IMAGE_FILTER
    assert "not a valid regular expression" in err.value.message


@pytest.mark.timeout(60)
def test_catastrophic_image_filter_is_bounded() -> None:
    # Unbounded, this match runs for hours: the error can only come from the match timeout, and the
    # generous pytest timeout turns a missing bound into a failure instead of a hang. How long the
    # bound takes is the benchmark's business, not this test's (the machine may be loaded).
    with pytest.raises(InvalidImageFilterError) as err:
        rank(
            [SourceCandidates("s", [Candidate(SLOW_IMAGE, 1)])],
            image_filter=ImageFilter(CATASTROPHIC, match_timeout=0.2),
        )
    assert "catastrophic backtracking" in err.value.message


@pytest.mark.timeout(60)
def test_total_budget_bounds_many_slow_matches() -> None:
    images = [Candidate(SLOW_IMAGE.replace("b:", f"b{i}:"), 1) for i in range(50)]
    filt = ImageFilter(r"^docker\.io/library/(a|aa)+b\d?:latest$", match_timeout=0.05, total_budget=0.3)
    with pytest.raises(InvalidImageFilterError) as err:
        rank([SourceCandidates("s", images)], image_filter=filt)
    assert "catastrophic backtracking" in err.value.message


def test_rank_normalizes_merges_weights_and_sorts() -> None:
    prom = SourceCandidates(
        "prometheus-0",
        [Candidate("nginx:1.25", 3), Candidate("docker.io/library/nginx:1.25", 2), Candidate("redis", 5)],
    )
    reg = SourceCandidates(
        "registry-1", [Candidate("nginx:1.25", 1), Candidate("quay.example.com/a/b:1", 4)], weight=0.5
    )
    ranking = rank([prom, reg])
    assert [(i.image, i.score, i.sources) for i in ranking.images] == [
        ("docker.io/library/nginx:1.25", 5.5, ("prometheus-0", "registry-1")),
        ("docker.io/library/redis:latest", 5.0, ("prometheus-0",)),
        ("quay.example.com/a/b:1", 2.0, ("registry-1",)),
    ]
    assert ranking.distinct == 3 and ranking.filtered_out == 0 and ranking.invalid == {}


def test_rank_ties_break_by_name_and_topx_cuts() -> None:
    cands = [Candidate(f"img{i}:1", 1.0) for i in (3, 1, 2)]
    ranking = rank([SourceCandidates("s", cands)], top_x=2)
    assert [i.image for i in ranking.images] == ["docker.io/library/img1:1", "docker.io/library/img2:1"]
    assert ranking.distinct == 3


def test_rank_reports_invalid_references_with_examples() -> None:
    bad = ["Nginx:1", "sha256:" + "c" * 64, "a b", "x:-y", "Nginx:1"]
    ranking = rank([SourceCandidates("p", [Candidate(b, 1) for b in bad] + [Candidate("ok:1", 1)])])
    assert [i.image for i in ranking.images] == ["docker.io/library/ok:1"]
    assert ranking.invalid["p"].count == 5
    assert ranking.invalid["p"].examples == ["Nginx:1", "sha256:" + "c" * 64, "a b"]


def test_rank_image_filter_counts_and_string_pattern() -> None:
    cands = [Candidate("a.dkr.ecr.us-east-1.amazonaws.com/x:1", 9), Candidate("nginx:1", 1)]
    ranking = rank([SourceCandidates("s", cands)], image_filter="^(?!.*ecr\\..*amazonaws\\.com).*$")
    assert [i.image for i in ranking.images] == ["docker.io/library/nginx:1"]
    assert ranking.filtered_out == 1


def test_rank_is_deterministic_under_input_order() -> None:
    cands = [Candidate(f"i{i % 37}:{i % 5}", float(i % 7)) for i in range(500)]
    a = rank([SourceCandidates("s", cands)], top_x=20).images
    b = rank([SourceCandidates("s", list(reversed(cands)))], top_x=20).images
    assert a == b
    assert all(math.isfinite(i.score) for i in a)


def test_rank_skips_non_finite_scores() -> None:
    cands = [Candidate("a:1", math.nan), Candidate("b:1", math.inf), Candidate("c:1", 1.0)]
    ranking = rank([SourceCandidates("s", cands)])
    assert [i.image for i in ranking.images] == ["docker.io/library/c:1"]
    assert ranking.non_finite == 2


def test_rank_never_ranks_signatures_attestations_or_sboms() -> None:
    digest_tag = "sha256-" + "0a1b2c3d" * 8
    cands = [
        Candidate(f"nginx:{digest_tag}.sig", 9),
        Candidate(f"nginx:{digest_tag}", 9),
        Candidate("nginx:1", 1),
    ]
    ranking = rank([SourceCandidates("s", cands)])
    assert [i.image for i in ranking.images] == ["docker.io/library/nginx:1"]
    assert ranking.artifacts == {"s": 2} and ranking.invalid == {}


# --- sources made of parts (registry repositories) --------------------------------------------


def test_carry_forward_keeps_failed_parts_last_good_images() -> None:
    fresh = [PartImage("r/a:2", 2, "a"), PartImage("r/a:1", 1, "a")]
    previous = [
        PartImage("r/a:1", 2, "a"),  # a answered: its fresh list wins
        PartImage("r/a:0", 1, "a"),
        PartImage("r/b:5", 2, "b"),  # b failed: kept as it was
        PartImage("r/b:4", 1, "b"),
        PartImage("r/legacy:1", 2, None),  # stored without a part: kept while anything fails
    ]
    out = carry_forward(fresh, previous, {"b"}, keep=10)
    assert [(i.image, i.score, i.part) for i in out] == [
        ("r/a:2", 2, "a"),
        ("r/b:5", 2, "b"),
        ("r/legacy:1", 2, None),
        ("r/a:1", 1, "a"),
        ("r/b:4", 1, "b"),
    ]
    assert len(carry_forward(fresh, previous, {"b"}, keep=2)) == 2


def test_normalized_parts_and_partial_error() -> None:
    assert normalized_parts({"nginx:1": "library/nginx", "Bad Ref": "x"}) == {
        "docker.io/library/nginx:1": "library/nginx"
    }
    result = SourceResult(
        parts=3, failed_parts={"team/b": SourceError(Reason.NOT_FOUND, "HTTP 404 from registry")}
    )
    missing = result.partial_error()
    assert missing is not None and missing.reason is Reason.NOT_FOUND
    assert missing.message == "1 of 3 failing, the others answered: team/b: NotFound: HTTP 404 from registry"
    assert SourceResult().partial_error() is None
