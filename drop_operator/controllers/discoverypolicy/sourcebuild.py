"""From a policy's source spec (api model) to a discovery ``Source`` (plain configuration).

The api layer speaks Go durations and optional fields; the discovery layer takes seconds and
dataclasses. This is the only place that translates between them, used by the reconciler and by
``drop-operator discover`` alike. Building validates what the discovery layer can check before any
network call (templates, tag filters, version patterns, URLs): a bad one raises ``SourceError``
with a precise reason (``InvalidTemplate``, ``InvalidTagFilter``...).
"""

from __future__ import annotations

from drop_operator.api.discoverypolicy import DiscoverySource
from drop_operator.api.duration import parse_duration
from drop_operator.discovery.http import Credentials
from drop_operator.discovery.prometheus import PrometheusConfig, PrometheusSource
from drop_operator.discovery.registry import RegistryConfig, RegistrySource, TokenCache
from drop_operator.discovery.source import Source

__all__ = ["build_source", "source_deadline"]

#: Slack on top of a Prometheus query's own timeout before the whole source is abandoned.
_PROMETHEUS_SLACK = 5.0
#: A registry source makes several requests (token, pages, repositories), each bounded by
#: ``timeout``; the whole source is bounded by this many request timeouts, within the limits below.
_REGISTRY_REQUESTS = 8
_MIN_DEADLINE = 60.0
_MAX_DEADLINE = 600.0


def build_source(
    spec: DiscoverySource, credentials: Credentials | None, *, token_cache: TokenCache | None = None
) -> Source:
    """The discovery source for ``spec``; raises ``SourceError`` for configuration it rejects.

    ``token_cache`` lets registry sources reuse bearer tokens across syncs; pass one per process.
    """
    if spec.prometheus is not None:
        p = spec.prometheus
        return PrometheusSource(
            PrometheusConfig(
                endpoint=p.endpoint,
                query=p.query,
                query_type=p.query_type,
                lookback=parse_duration(p.lookback),
                step=parse_duration(p.step),
                timeout=parse_duration(p.timeout),
            ),
            credentials,
        )
    if spec.registry is not None:
        r = spec.registry
        return RegistrySource(
            RegistryConfig(
                url=r.url,
                repositories=tuple(r.repositories),
                tag_filter=r.tag_filter,
                top_x=r.top_x,
                version_pattern=r.version_pattern,
                image_template=r.image_template,
                max_scan=r.max_scan,
                timeout=parse_duration(r.timeout),
            ),
            credentials,
            token_cache=token_cache,
        )
    raise ValueError(f"source of type {spec.type!r} has no {spec.type} block")


def source_deadline(spec: DiscoverySource) -> float:
    """Seconds after which a whole source run is abandoned as ``Timeout``.

    Each request already has its own timeout; this bounds the run as a whole, so one source can
    never hold a sync (and the status write of every other source) longer than this.
    """
    if spec.prometheus is not None:
        return parse_duration(spec.prometheus.timeout) + _PROMETHEUS_SLACK
    if spec.registry is not None:
        per_request = parse_duration(spec.registry.timeout)
        return min(_MAX_DEADLINE, max(_MIN_DEADLINE, per_request * _REGISTRY_REQUESTS))
    return _MIN_DEADLINE
