"""Sources run independently: a failure, a hang or a bug in one never hides the others."""

from __future__ import annotations

import asyncio
import time

from drop_operator.discovery import Candidate, Reason, Source, SourceError, SourceResult, run_sources


class _Fixed(Source):
    kind = "test"

    def __init__(self, outcome: SourceResult | BaseException | None) -> None:
        self.outcome = outcome

    async def discover(self) -> SourceResult:
        if self.outcome is None:
            await asyncio.Event().wait()  # hangs until cancelled by the deadline
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        assert self.outcome is not None
        return self.outcome


async def test_each_source_has_its_own_outcome() -> None:
    good = SourceResult(candidates=[Candidate("nginx:1", 1.0)])
    start = time.monotonic()
    outcomes = await run_sources(
        {
            "ok": _Fixed(good),
            "down": _Fixed(SourceError(Reason.CONNECTION_ERROR, "refused")),
            "hangs": _Fixed(None),
            "bug": _Fixed(KeyError("oops")),
        },
        deadline=0.3,
    )
    assert time.monotonic() - start < 2
    assert list(outcomes) == ["ok", "down", "hangs", "bug"]
    assert outcomes["ok"] is good
    reasons = {k: v.reason for k, v in outcomes.items() if isinstance(v, SourceError)}
    assert reasons == {"down": Reason.CONNECTION_ERROR, "hangs": Reason.TIMEOUT, "bug": Reason.INTERNAL_ERROR}
