"""The broker's prefetch credit survives an acknowledgement that Redis never got.

Kombu's Redis transport counts a message against the prefetch limit from
delivery until `ack` or `reject` has removed it from Redis's unacked index; if
Redis is down at that moment the call raises, Celery logs "Couldn't ack", and
the message stays counted for good. A worker with one prefetch slot per job
slot then never asks for another message: it stays up, heartbeats, and consumes
nothing (seen with Redis killed while a job ran; an idle worker reconnects).

Releasing the local credit whatever Redis answers is safe: the message stays in
Redis's unacked index, so the transport restores it after the visibility
timeout, and the job store makes a second delivery of a job that already ended
(or was requeued under a new message) a no-op.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import base as virtual

from shoal.logs import get_logger

log = get_logger(__name__)


class ReleasingQoS(kombu_redis.QoS):
    def ack(self, delivery_tag: str) -> None:
        try:
            super().ack(delivery_tag)
        except Exception:
            self._release(delivery_tag)
            raise

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)
        except Exception:
            self._release(delivery_tag)
            raise

    def _release(self, delivery_tag: str) -> None:
        log.warning("broker unreachable at acknowledgement; the message will be restored")
        virtual.QoS.ack(self, delivery_tag)  # local bookkeeping only, no Redis call


def install() -> None:
    """Every Redis channel of this process (redis://, rediss://, sentinel) uses it."""
    kombu_redis.Channel.QoS = ReleasingQoS
