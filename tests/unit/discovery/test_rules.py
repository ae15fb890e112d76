"""Pure discovery rules: templates, version order, challenge and Link parsing, patterns, ranking."""

from __future__ import annotations

import math
import time

import pytest

from drop_operator.discovery.engine import ImageFilter, SourceCandidates, rank
from drop_operator.discovery.errors import InvalidImageFilterError, Reason, SourceError
from drop_operator.discovery.http import Credentials
from drop_operator.discovery.prometheus import parse_query_response
from drop_operator.discovery.registry import TokenCache, parse_challenges, parse_next_link
from drop_operator.discovery.source import Candidate
from drop_operator.discovery.template import ImageTemplate
from drop_operator.discovery.versions import parse_version, sort_newest_first

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


def test_catastrophic_image_filter_is_bounded() -> None:
    start = time.monotonic()
    with pytest.raises(InvalidImageFilterError) as err:
        rank(
            [SourceCandidates("s", [Candidate(SLOW_IMAGE, 1)])],
            image_filter=ImageFilter(CATASTROPHIC, match_timeout=0.2),
        )
    assert time.monotonic() - start < 2
    assert "catastrophic backtracking" in err.value.message


def test_total_budget_bounds_many_slow_matches() -> None:
    images = [Candidate(SLOW_IMAGE.replace("b:", f"b{i}:"), 1) for i in range(50)]
    filt = ImageFilter(r"^docker\.io/library/(a|aa)+b\d?:latest$", match_timeout=0.05, total_budget=0.3)
    start = time.monotonic()
    with pytest.raises(InvalidImageFilterError):
        rank([SourceCandidates("s", images)], image_filter=filt)
    assert time.monotonic() - start < 1.5


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
