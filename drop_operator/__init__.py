"""drop-operator: discovers the container images that matter and keeps them warm on cluster nodes."""

__version__ = "0.1.0"

__all__ = ["__version__"]
