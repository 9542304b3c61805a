"""HealthCheck: OK for a live producer/consumer id, CLOSE otherwise (the client then re-creates it)."""

from __future__ import annotations

import grpc

from danube_embedded_broker.core import BrokerCore
from danube_embedded_broker.wire import pb, pb_grpc

_Status = pb.HealthCheckResponse.ClientStatus


class HealthService(pb_grpc.HealthCheckServicer):  # type: ignore[misc, unused-ignore]
    def __init__(self, core: BrokerCore) -> None:
        self.core = core

    async def HealthCheck(
        self, request: pb.HealthCheckRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.HealthCheckResponse:
        alive = self.core.is_alive(request.client, request.id)
        return pb.HealthCheckResponse(status=_Status.OK if alive else _Status.CLOSE)
