"""Fail on code nothing uses: ``python -m devtools.deadcode`` (part of ``task lint``).

Runs vulture over the whole tree (the package, the dev tooling, tests, e2e and benchmarks, so a name
used only by a test still counts as used) and reports unused names defined in ``drop_operator/``
and ``devtools/``. Names that are used in ways vulture cannot see (pydantic fields written by
keyword, protocol methods called by a library) are listed in ``hack/deadcode_allowlist.py`` with
the reason. Exit status 1 when anything is reported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import vulture

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("drop_operator", "devtools", "tests", "e2e", "benchmarks", "hack/deadcode_allowlist.py")
REPORTED = ("drop_operator", "devtools")
#: Decorated functions are called by their framework, not by name.
IGNORE_DECORATORS = ["@model_validator", "@field_validator", "@pytest.fixture"]
MIN_CONFIDENCE = 60


def unused(root: Path = ROOT) -> list[str]:
    """One ``path:line: message`` line per unused name in the reported packages."""
    scanner = vulture.Vulture(ignore_decorators=IGNORE_DECORATORS)
    scanner.scavenge([str(root / path) for path in SCANNED])
    reported = tuple(str(root / path) + "/" for path in REPORTED)
    return [
        f"{Path(item.filename).relative_to(root)}:{item.first_lineno}: {item.message}"
        for item in scanner.get_unused_code(min_confidence=MIN_CONFIDENCE)
        if str(item.filename).startswith(reported)
    ]


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    found = unused()
    for line in found:
        print(line)
    if found:
        print(
            f"{len(found)} unused names; remove them or, if used in a way vulture cannot see, "
            "add them to hack/deadcode_allowlist.py",
            file=sys.stderr,
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
