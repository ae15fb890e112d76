"""Go-style durations (``30s``, ``5m``, ``1h30m``, ``500ms``) as used in the CRDs.

The API server checks duration fields with CEL's ``duration()``, which parses Go's
``time.ParseDuration`` grammar. The operator must read the same strings the same way, so this module
implements that grammar in Python. :data:`DURATION_PATTERN` is a strict subset of it (no sign, no
``µs`` spelling, no leading-dot fractions) so every string the schema admits also parses in CEL.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic.config import JsonDict

__all__ = [
    "DURATION_MAX_LENGTH",
    "DURATION_PATTERN",
    "Duration",
    "duration_guard",
    "duration_rule",
    "format_duration",
    "parse_duration",
    "positive_duration",
]

#: JSON-schema pattern (RE2 and Python compatible) for the durations the CRDs accept.
DURATION_PATTERN = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$"

#: Bounds the string so the API server's CEL cost estimate for ``duration(self)`` stays small.
DURATION_MAX_LENGTH = 64

_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 MICRO SIGN, accepted by Go
    "μs": 1e-6,  # U+03BC GREEK SMALL LETTER MU, accepted by Go
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_COMPONENT = re.compile(r"([0-9]*(?:\.[0-9]*)?)([a-zµμ]+)")


def parse_duration(text: str) -> float:
    """Parse a Go duration string into seconds.

    Accepts everything Go's ``time.ParseDuration`` accepts (sign, fractions, ``ns``..``h``, ``0``),
    so a value the API server admitted can never fail here. Raises :class:`ValueError` otherwise.
    """
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string, got {type(text).__name__}")
    s = text.strip()
    sign = 1.0
    if s[:1] in ("+", "-"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _COMPONENT.match(s, pos)
        if m is None or m.group(1) in ("", "."):
            raise ValueError(f"invalid duration {text!r}")
        unit = _UNITS.get(m.group(2))
        if unit is None:
            raise ValueError(f"unknown unit {m.group(2)!r} in duration {text!r}")
        total += float(m.group(1)) * unit
        pos = m.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """Format seconds the way Go's ``time.Duration.String`` does (``1h30m0s``, ``500ms``, ``0s``).

    Status fields and messages echo durations back to users who wrote them in Go syntax.
    """
    nanos = round(seconds * 1e9)
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= size:
                return sign + _trim(nanos / size) + unit
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    out = sign
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + _trim(rest / 1e9) + "s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def _check(value: str) -> str:
    parse_duration(value)
    return value


#: Annotated string type for duration fields: schema pattern + length bound, parsed on validation.
Duration = Annotated[
    str,
    Field(pattern=DURATION_PATTERN, max_length=DURATION_MAX_LENGTH),
    AfterValidator(_check),
]


def duration_guard(expression: str = "self") -> str:
    """CEL that is true when ``expression`` is *not* a valid duration string.

    ``duration()`` on a malformed string fails with a type-conversion error that buries the
    pattern's clear message; guarding each rule with this leaves the pattern to report it alone.
    """
    return f"!{expression}.matches(r'{DURATION_PATTERN}')"


def duration_rule(condition: str, message: str) -> JsonDict:
    """Schema extra with one CEL rule on a duration field, evaluated only for well-formed values."""
    return {
        "x-kubernetes-validations": [{"rule": f"{duration_guard()} || ({condition})", "message": message}]
    }


def positive_duration(field_name: str) -> JsonDict:
    """CEL rule for a duration field that must be greater than zero."""
    return duration_rule("duration(self) > duration('0s')", f"{field_name} must be greater than 0")
