"""A topic: its producers, its subscriptions and (when reliable) its durable log."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from danube_embedded_broker.storage import TopicLog
from danube_embedded_broker.subscription import Subscription
from danube_embedded_broker.wire import pb

RELIABLE = pb.DispatchStrategy.Reliable
NON_RELIABLE = pb.DispatchStrategy.NonReliable
STRATEGY_NAMES: dict[int, str] = {RELIABLE: "Reliable", NON_RELIABLE: "NonReliable"}


@dataclass
class Producer:
    id: int
    name: str
    topic: str
    access_mode: int
    schema_id: int | None = None
    schema_version: int | None = None


class Topic:
    """Reliable topics append to their log (offsets 0, 1, ...); non-reliable ones keep nothing."""

    def __init__(self, name: str, strategy: int, directory: Path, log: TopicLog | None) -> None:
        self.name = name
        self.strategy = strategy
        self.directory = directory
        self.log = log
        self.producers: dict[str, Producer] = {}
        self.subscriptions: dict[str, Subscription] = {}

    @property
    def reliable(self) -> bool:
        return bool(self.strategy == RELIABLE)

    def publish(self, message: pb.StreamMessage) -> int:
        """Store (reliable) or hand out (non-reliable) a message whose msg_id is already filled in.

        Returns the topic offset (always 0 for non-reliable). Raises ``OSError`` when the log write
        fails; then nothing was stored.
        """
        if self.log is not None:
            message.msg_id.topic_offset = self.log.next_offset
            offset = self.log.append(message.SerializeToString())
            for sub in self.subscriptions.values():
                sub.wake()
            return offset
        message.msg_id.topic_offset = 0
        for sub in self.subscriptions.values():
            sub.deliver(message)
        return 0
