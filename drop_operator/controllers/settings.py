"""Settings every reconciler receives from the command line."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OperatorSettings:
    """What the reconcilers need to know about the operator's own deployment.

    ``namespace`` holds the Secrets that sources reference, the pull pods, the Lease and the Events.
    ``operator_image`` is the operator's own image: pull pods copy the static no-op binary out of it
    (``noop_path``) so the target image needs no shell or binaries of its own.
    ``operator_image_pull_secrets`` names Secrets in ``namespace`` that pull ``operator_image`` (a
    private mirror); every pull pod lists them besides its CachedImage's own, as the pod's init
    container pulls the operator image too. The chart passes its ``imagePullSecrets`` here.
    """

    namespace: str = "drop-system"
    workers: int = 2
    operator_image: str = "drop-operator:0.1.0"
    noop_path: str = "/usr/local/bin/drop-noop"
    operator_image_pull_secrets: tuple[str, ...] = ()
    field_manager: str = "drop-operator"
    warm_up: bool = True
    """Run the warm-up controller (it patches Nodes to remove their warming taints)."""
    platform_lookup: bool = True
    """Ask registries which platforms an image has, and target only nodes that can run it. Off:
    target by labels only, and the operator never contacts a registry for a CachedImage."""
