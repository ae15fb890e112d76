"""The DiscoveryPolicy reconciler: query each policy's sources on its interval, publish the ranked images.

Modules: ``schedule`` (when to sync), ``secrets`` (credentials from Secrets), ``sourcebuild`` (spec →
discovery sources), ``sync`` (one pass over the sources, merged with last-known-good results, shared
with ``drop-operator discover``), ``status`` (conditions and per-source status).
"""
