"""Go duration parsing and formatting, and the schema pattern's agreement with the parser."""

from __future__ import annotations

import re

import pytest

from drop_operator.api.duration import DURATION_PATTERN, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("2h45m30.5s", 9930.5),
        ("100us", 1e-4),
        ("100µs", 1e-4),
        ("7ns", 7e-9),
        ("0", 0.0),
        ("1.h", 3600.0),  # Go accepts an empty fraction
        ("-1m", -60.0),
        ("+6h", 21600.0),
        ("168h", 604800.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "10", "1d", "h", "1 h", "5m3", "-", "1hh", ".s", "1m 30s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (30, "30s"),
        (300, "5m0s"),
        (5400, "1h30m0s"),
        (0.5, "500ms"),
        (1.5, "1.5s"),
        (90061.25, "25h1m1.25s"),
        (-2, "-2s"),
        (2e-6, "2µs"),
    ],
)
def test_format_duration_matches_go(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["30s", "1h30m", "0", "500ms", "2h45m30.5s", "100us"])
def test_format_round_trips(text: str) -> None:
    assert parse_duration(format_duration(parse_duration(text))) == pytest.approx(parse_duration(text))


@pytest.mark.parametrize("text", ["30s", "1h30m", "0", "500ms", "1.5h", "168h"])
def test_pattern_admits_valid(text: str) -> None:
    assert re.fullmatch(DURATION_PATTERN, text)


@pytest.mark.parametrize("text", ["-1s", "1d", "1", "1 h", "", ".5s", "1µs"])
def test_pattern_rejects_what_cel_might_not_parse(text: str) -> None:
    """The schema pattern is a strict subset of Go's grammar: sign and non-ASCII units stay out."""
    assert not re.fullmatch(DURATION_PATTERN, text)
