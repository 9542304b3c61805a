"""HealthCheck polling shared by producers and consumers (docs/wire-contract.md §2: CLOSE means re-create)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc

from ..proto import DanubeApi_pb2 as pb
from .context import ClientContext
from .errors import describe_rpc_error
from .lookup import BrokerAddress

ClientType = pb.HealthCheckRequest.ClientType
PRODUCER = pb.HealthCheckRequest.Producer
CONSUMER = pb.HealthCheckRequest.Consumer


async def is_closed_by_broker(
    ctx: ClientContext, address: BrokerAddress, client: ClientType, id_: int
) -> bool:
    """True when the broker answers CLOSE for this producer/consumer id. RPC errors propagate."""
    stubs = ctx.pool.get(address.connect_url).broker
    request = pb.HealthCheckRequest(request_id=0, client=client, id=id_)
    response = await stubs.health_check(
        request,
        metadata=await ctx.auth.metadata(address.proxy_header),
        timeout=ctx.options.rpc_timeout_s,
    )
    return response.status == pb.HealthCheckResponse.CLOSE


async def health_loop(ctx: ClientContext, what: str, check_once: Callable[[], Awaitable[None]]) -> None:
    """Call ``check_once`` every ``health_interval_s`` until cancelled.

    Survives every error (the official client's loop died on the first failed RPC, so its consumers never
    noticed a restarted broker); failures are logged within the client's log budget.
    """
    interval = ctx.options.health_interval_s
    while True:
        await asyncio.sleep(interval)
        try:
            await check_once()
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError as err:
            ctx.log.info("%s: health check failed: %s", what, describe_rpc_error(err))
        except Exception as err:
            ctx.log.warning("%s: health check error: %r", what, err)
