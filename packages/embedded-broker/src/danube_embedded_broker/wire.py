"""The generated Danube stubs, imported in one place (they live in danube-connect-core)."""

from danube_connect_core.proto import (  # type: ignore[import-untyped, unused-ignore]
    DanubeApi_pb2 as pb,
)
from danube_connect_core.proto import (  # type: ignore[import-untyped, unused-ignore]
    DanubeApi_pb2_grpc as pb_grpc,
)
from danube_connect_core.proto import (  # type: ignore[import-untyped, unused-ignore]
    SchemaRegistry_pb2_grpc as schema_pb_grpc,
)

__all__ = ["pb", "pb_grpc", "schema_pb_grpc"]
