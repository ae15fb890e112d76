"""The image's record: the ConfigMap that holds which nodes have it (see :mod:`~..common.nodecache`).

Read from the informer of records (the operator's namespace, :data:`~.nodecache.RECORD_SELECTOR`)
when an image's memory is rebuilt; written by :meth:`NodeRecords.flush`, at most once per flush
interval while pulls go on, so a write carries many pulls (the pods of successful pulls wait for
it: a crash loses nothing). The record is created owned by its CachedImage, which the garbage
collector deletes it with. Flushing also finishes the migration from version 1: once the record
holds the set, the old annotation is removed from the CachedImage.
"""

from __future__ import annotations

import base64
from typing import Any

from drop_operator.api import CachedImage
from drop_operator.controllers.cachedimage.state import ImageState
from drop_operator.controllers.common import LABEL_MANAGED_BY, MANAGED_BY, label_value, nodecache
from drop_operator.controllers.kinds import CACHED_IMAGES
from drop_operator.runtime import ApiError, Informer, KubeClient
from drop_operator.runtime.resources import CONFIG_MAPS

__all__ = ["NodeRecords", "build_record"]

Obj = dict[str, Any]


def build_record(namespace: str, image_name: str, image_uid: str, reference: str, payload: bytes) -> Obj:
    """The ConfigMap holding ``payload`` for the CachedImage ``image_name``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": nodecache.record_name(image_uid),
            "namespace": namespace,
            "labels": {
                LABEL_MANAGED_BY: MANAGED_BY,
                nodecache.LABEL_COMPONENT: nodecache.RECORD_COMPONENT,
                nodecache.LABEL_IMAGE: label_value(image_name),
            },
            "ownerReferences": [
                {
                    "apiVersion": CACHED_IMAGES.api_version,
                    "kind": CACHED_IMAGES.kind,
                    "name": image_name,
                    "uid": image_uid,
                    "controller": True,
                }
            ],
        },
        "data": {"reference": reference},
        "binaryData": {nodecache.RECORD_KEY: base64.b64encode(payload).decode()},
    }


class NodeRecords:
    """Reads and writes the records of the CachedImages (ConfigMaps in ``namespace``)."""

    def __init__(self, client: KubeClient, informer: Informer, namespace: str) -> None:
        self.client = client
        self.informer = informer
        self.namespace = namespace

    def _record(self, image: CachedImage) -> Obj | None:
        return self.informer.get(f"{self.namespace}/{nodecache.record_name(image.metadata.uid or '')}")

    def stored(self, image: CachedImage) -> bytes | str | None:
        """What holds the image's set now (see :func:`~.nodecache.stored`), for :meth:`ImageState.load`."""
        return nodecache.stored(self._record(image), image.metadata.annotations)

    async def flush(
        self,
        image: CachedImage,
        state: ImageState,
        *,
        keep: set[str],
        pulling_now: bool,
        now: float,
        interval: float,
    ) -> float | None:
        """Store the set if it changed; at most every ``interval`` seconds while pulls go on.

        ``keep`` are the keys of the nodes that exist: the others are forgotten first. Returns the
        seconds until a write is allowed when one is due but must wait, else None (stored).
        """
        state.cached.retain(keep)
        legacy = nodecache.ANNOTATION in image.metadata.annotations
        if state.written_version == state.cached.version and not legacy:
            return None
        record = self._record(image)
        if record is None and not legacy and not state.cached:
            state.written_version = state.cached.version  # nothing to remember, nothing stored
            return None
        wait = state.last_flush + interval - now
        if pulling_now and wait > 0:
            return wait
        payload = nodecache.encode(image.reference, state.cached)
        if record is None or nodecache.record_payload(record) != payload:
            await self._write(image, payload, exists=record is not None)
        if legacy:  # the migration from version 1: the record holds the set now
            try:
                await self.client.patch(
                    CACHED_IMAGES,
                    image.metadata.name,
                    {"metadata": {"annotations": {nodecache.ANNOTATION: None}}},
                )
            except ApiError as err:
                if not err.not_found:
                    raise
        state.written_version = state.cached.version
        state.last_flush = now
        return None

    async def _write(self, image: CachedImage, payload: bytes, *, exists: bool) -> None:
        body = build_record(
            self.namespace, image.metadata.name, image.metadata.uid or "", image.reference, payload
        )
        name = body["metadata"]["name"]
        change = {"data": body["data"], "binaryData": body["binaryData"]}
        if exists:
            try:
                await self.client.patch(CONFIG_MAPS, name, change, namespace=self.namespace)
                return
            except ApiError as err:
                if not err.not_found:
                    raise  # not found: deleted behind the cache's back, create it again
        try:
            await self.client.create(CONFIG_MAPS, body, namespace=self.namespace)
        except ApiError as err:
            if not err.already_exists:
                raise
            await self.client.patch(CONFIG_MAPS, name, change, namespace=self.namespace)
