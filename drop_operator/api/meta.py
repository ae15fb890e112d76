"""Pieces shared by every kind: model base, timestamps, conditions, references, object metadata.

Objects travel through the operator as plain JSON dicts (that is what the runtime hands out). The
models here parse those dicts leniently (unknown fields are ignored, so a newer CRD never breaks an
older operator) and write status back in the exact camelCase wire form.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

__all__ = [
    "DNS_LABEL_PATTERN",
    "DNS_SUBDOMAIN_PATTERN",
    "Condition",
    "ConditionStatus",
    "KubeModel",
    "KubeObject",
    "LocalObjectReference",
    "ObjectMeta",
    "OwnerReference",
    "Timestamp",
    "Toleration",
    "cel",
    "find_condition",
    "is_condition_true",
    "list_map",
    "set_condition",
    "utcnow",
]

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class KubeModel(BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python, unknown fields ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_attribute_docstrings=True,
    )

    def to_json(self) -> dict[str, Any]:
        """The wire form: camelCase keys, unset optionals omitted, timestamps as RFC 3339 strings."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def utcnow() -> datetime:
    """Now in UTC, truncated to seconds as Kubernetes stores ``metav1.Time``.

    Truncating keeps status comparisons stable: a value read back from the server equals the one
    written, so an unchanged status is recognised as unchanged.
    """
    return datetime.now(UTC).replace(microsecond=0)


def _rfc3339(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: A ``metav1.Time``: serialized as ``2006-01-02T15:04:05Z`` (second precision, UTC).
Timestamp = Annotated[datetime, PlainSerializer(_rfc3339, return_type=str, when_used="json")]

ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(KubeModel):
    """One aspect of the object's current state (KEP-1623, the shape of ``metav1.Condition``)."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    """Condition type in CamelCase, e.g. ``Ready``."""
    status: ConditionStatus
    """``True``, ``False`` or ``Unknown``."""
    reason: str = Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """Machine-readable CamelCase reason for the last transition."""
    message: str = Field("", max_length=32768)
    """Human-readable detail; may be empty."""
    observed_generation: int | None = Field(None, ge=0)
    """The ``metadata.generation`` this condition was computed from."""
    last_transition_time: Timestamp = Field(default_factory=utcnow)
    """When ``status`` last changed (not when the condition was last written)."""


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    """The condition of that type, or None."""
    return next((c for c in conditions if c.type == type_), None)


def is_condition_true(conditions: list[Condition], type_: str) -> bool:
    """Whether the condition of that type exists and is ``True``."""
    found = find_condition(conditions, type_)
    return found is not None and found.status == "True"


def set_condition(conditions: list[Condition], new: Condition) -> list[Condition]:
    """Return a copy of ``conditions`` with ``new`` replacing the one of the same type.

    ``lastTransitionTime`` is kept from the existing condition while ``status`` does not change, so
    rewriting the same state (or only a new message) is not reported as a transition and does not
    make the status differ from what is stored. Order is kept; a new type is appended.
    """
    out: list[Condition] = []
    replaced = False
    for old in conditions:
        if old.type != new.type:
            out.append(old)
            continue
        replaced = True
        if old.status == new.status:
            out.append(new.model_copy(update={"last_transition_time": old.last_transition_time}))
        else:
            out.append(new)
    if not replaced:
        out.append(new)
    return out


class LocalObjectReference(KubeModel):
    """A reference by name to an object in a known place (cluster-scoped, or the operator's namespace)."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """Name of the referenced object."""


class Toleration(KubeModel):
    """A ``core/v1`` Toleration, copied verbatim onto pull pods and used to select target nodes."""

    key: str | None = Field(None, max_length=316)
    """Taint key; empty with operator ``Exists`` matches every taint."""
    operator: Literal["Exists", "Equal"] | None = None
    """``Equal`` (the default when unset) or ``Exists``."""
    value: str | None = Field(None, max_length=63)
    """Taint value to match with ``Equal``."""
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect to match; empty matches all effects."""
    toleration_seconds: int | None = None
    """For ``NoExecute``: how long the pod stays bound after the taint appears."""


class OwnerReference(KubeModel):
    """An entry of ``metadata.ownerReferences``."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(KubeModel):
    """The parts of ``metadata`` the reconcilers read; anything else is ignored when parsing."""

    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: Timestamp | None = None
    deletion_timestamp: Timestamp | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    owner_references: list[OwnerReference] = Field(default_factory=list)
    finalizers: list[str] = Field(default_factory=list)

    @property
    def deleting(self) -> bool:
        """True once deletion has been requested (e.g. a foreground delete waiting for children)."""
        return self.deletion_timestamp is not None


class KubeObject(KubeModel):
    """Common envelope of a whole object; each kind adds ``spec`` and ``status``."""

    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> Self:
        """Parse an object as the API server (or an informer) returned it."""
        return cls.model_validate(obj)


def cel(*rules: tuple[str, str]) -> JsonDict:
    """Schema extra with ``x-kubernetes-validations`` from ``(rule, message)`` pairs."""
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in rules]}


def list_map(*keys: str) -> JsonDict:
    """Schema extra that makes a list a map keyed by ``keys`` (merge and SSA treat items by key)."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}
