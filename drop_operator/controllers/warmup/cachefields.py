"""The fields of Nodes the warm-up controller reads: what the shared Node informer keeps for it.

See :mod:`drop_operator.runtime.transform`; ``tests/unit/controllers/test_cachefields.py`` runs the
readers on whole and on projected Nodes. Identity fields are always kept.
"""

from __future__ import annotations

from drop_operator.runtime.transform import Fields

__all__ = ["NODE_FIELDS"]

NODE_FIELDS = Fields(
    # decide.gates_node: node selector and os/arch labels; the wiring's predicate compares labels
    "metadata.labels",
    # the reconciler: the node's age (maxWait)
    "metadata.creationTimestamp",
    # warming_keys, gates_node, the taint-key index, and the patch that removes warming taints
    # (it writes back every other taint whole, so taints are kept whole)
    "spec.taints",
)
"""What :mod:`.decide`, the reconciler and the wiring read of a Node."""
