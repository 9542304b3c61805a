"""Stable ``Idempotency-Key`` values (invariant 2 on the target's side).

Derived only from message ids (topic, partition, offset), which are the same on every retry and on a
redelivery after a crash; a target that de-duplicates on the header therefore sees one delivery. A batch
key covers exactly its records: after a crash the broker may redeliver them in other batches, which then
carry other keys (use ``body_mode = "record"`` when the target must de-duplicate across crashes).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

__all__ = ["NAMESPACE", "batch_key", "record_key"]

#: Never change: deployed targets may hold keys derived from it.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "danube-connect:http-sink")


def record_key(message_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, message_id))


def batch_key(message_ids: Sequence[str]) -> str:
    return str(uuid.uuid5(NAMESPACE, "batch\n" + "\n".join(message_ids)))
