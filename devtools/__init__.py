"""Developer tooling (not shipped): tool paths, the local control plane, demo helpers."""
