"""Run a policy's sources concurrently and independently.

One slow or failing source never delays or hides the others: each runs as its own task under
its own deadline, and each outcome is either a `SourceResult` or a `SourceError`. An unexpected
exception inside a source (a bug) becomes `SourceError(InternalError)` rather than taking the
caller down; cancellation of the caller still propagates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from drop_operator.discovery.errors import Reason, SourceError
from drop_operator.discovery.source import Source, SourceResult

__all__ = ["run_sources"]


async def _run_one(source: Source, deadline: float) -> SourceResult | SourceError:
    try:
        async with asyncio.timeout(deadline):
            return await source.discover()
    except SourceError as err:
        return err
    except TimeoutError:
        return SourceError(Reason.TIMEOUT, f"source did not finish within {deadline:g}s")
    except Exception as err:  # a bug in a source must not stop the other sources
        return SourceError(Reason.INTERNAL_ERROR, f"{type(err).__name__}: {err}")


async def run_sources(
    sources: Mapping[str, Source], *, deadline: float = 120.0
) -> dict[str, SourceResult | SourceError]:
    """Discover with every source at once; outcomes by the same keys, in the same order."""
    names = list(sources)
    outcomes = await asyncio.gather(*(_run_one(sources[name], deadline) for name in names))
    return dict(zip(names, outcomes, strict=True))
