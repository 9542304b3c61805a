"""Consumers and their streams.

A consumer is registered by Subscribe and identified by (topic, subscription, consumer_name); it keeps
its ``consumer_id`` across re-subscribes. Each ReceiveMessages call opens a :class:`Session` (the
stream); a new session or a re-subscribe ends the previous one. A consumer whose stream ended stays
registered (HealthCheck OK, ReceiveMessages may reopen) until it is evicted, e.g. when another
consumer takes over an Exclusive subscription.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING

from danube_embedded_broker.wire import pb

if TYPE_CHECKING:
    from danube_embedded_broker.subscription import Subscription


class Session:
    """One ReceiveMessages stream. ``None`` in the queue ends it.

    ``limit`` bounds the queued messages (non-reliable buffer); ``None`` means unbounded (reliable
    subscriptions bound it with their in-flight window instead).
    """

    def __init__(self, consumer: Consumer, limit: int | None) -> None:
        self.consumer = consumer
        self.limit = limit
        #: a message (non-reliable) or its encoding (reliable: the stored bytes, sent as they are)
        self.queue: asyncio.Queue[pb.StreamMessage | bytes | None] = asyncio.Queue()
        self.closed = False

    def offer(self, message: pb.StreamMessage | bytes) -> bool:
        """Queue a message for the stream; ``False`` when closed or the buffer is full."""
        if self.closed or (self.limit is not None and self.queue.qsize() >= self.limit):
            return False
        self.queue.put_nowait(message)
        return True

    def close(self) -> None:
        """End the stream (idempotent); queued messages are discarded by the reader."""
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)


class Consumer:
    """A registered consumer of one subscription."""

    def __init__(
        self, consumer_id: int, name: str, subscription: Subscription, key_filters: tuple[str, ...]
    ) -> None:
        self.id = consumer_id
        self.name = name
        self.subscription = subscription
        self.key_filters = key_filters
        self.session: Session | None = None
        self.evicted = False
        #: monotonic time of the last Subscribe while no stream is open yet, else None
        self.awaiting_stream_since: float | None = time.monotonic()
        #: non-reliable messages that arrived between Subscribe and the first stream
        self.prebuffer: deque[pb.StreamMessage] = deque()

    @property
    def connected(self) -> bool:
        return self.session is not None and not self.session.closed

    def awaiting_stream(self, grace_s: float) -> bool:
        """Subscribed recently and not streaming yet (still counts as the owner of the subscription)."""
        since = self.awaiting_stream_since
        return since is not None and time.monotonic() - since < grace_s

    def end_session(self) -> None:
        """End the current stream, if any."""
        if self.session is not None:
            self.session.close()
