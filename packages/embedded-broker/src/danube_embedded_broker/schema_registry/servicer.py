"""grpc.aio servicer of ``danube_schema.SchemaRegistry`` over a :class:`SchemaRegistry`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import grpc
from danube_connect_core.proto import SchemaRegistry_pb2 as spb
from danube_connect_core.proto import SchemaRegistry_pb2_grpc as spb_grpc

from danube_embedded_broker.errors import storage_error
from danube_embedded_broker.schema_registry.model import SchemaRegistryError

if TYPE_CHECKING:
    from danube_embedded_broker.schema_registry.store import SchemaRegistry, SchemaView

_T = TypeVar("_T")
Context = grpc.aio.ServicerContext[Any, Any]


async def _abort(context: Context, error: SchemaRegistryError) -> NoReturn:
    await context.abort(error.code, error.message)
    raise AssertionError("unreachable")  # pragma: no cover - abort raises


def _schema_response(view: SchemaView) -> spb.GetSchemaResponse:
    record = view.record
    return spb.GetSchemaResponse(
        schema_id=view.schema_id,
        version=record.version,
        subject=view.subject,
        schema_type=record.schema_type,
        schema_definition=view.wrapped_definition,
        description=record.description,
        created_at=record.created_at,
        created_by=record.created_by,
        tags=record.tags,
        fingerprint=record.fingerprint,
        compatibility_mode=view.compatibility_mode,
    )


class SchemaRegistryServicer(spb_grpc.SchemaRegistryServicer):
    """Every RPC of the service; registry errors become ``context.abort(code, message)``."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry

    async def _call(self, context: Context, func: Callable[[], _T]) -> _T:
        try:
            return func()
        except SchemaRegistryError as error:
            await _abort(context, error)
        except OSError as exc:
            # The data dir refused the state file (full, read-only): RESOURCE_EXHAUSTED / UNAVAILABLE, which
            # clients retry; the change stays in memory and is saved with the next successful write.
            refusal = storage_error("cannot save the schema registry", exc, "retry later")
            await context.abort(refusal.code, refusal.message)
            raise AssertionError("unreachable") from None  # pragma: no cover - abort raises

    async def RegisterSchema(
        self, request: spb.RegisterSchemaRequest, context: Context
    ) -> spb.RegisterSchemaResponse:
        schema_id, version, is_new, fingerprint = await self._call(
            context,
            lambda: self._registry.register_schema(
                request.subject,
                request.schema_type,
                request.schema_definition,
                request.description,
                request.created_by,
                list(request.tags),
            ),
        )
        return spb.RegisterSchemaResponse(
            schema_id=schema_id, version=version, is_new_version=is_new, fingerprint=fingerprint
        )

    async def GetSchema(self, request: spb.GetSchemaRequest, context: Context) -> spb.GetSchemaResponse:
        version = request.version if request.HasField("version") else None
        view = await self._call(context, lambda: self._registry.get_schema(request.schema_id, version))
        return _schema_response(view)

    async def GetLatestSchema(
        self, request: spb.GetLatestSchemaRequest, context: Context
    ) -> spb.GetSchemaResponse:
        view = await self._call(context, lambda: self._registry.get_latest_schema(request.subject))
        return _schema_response(view)

    async def ListVersions(
        self, request: spb.ListVersionsRequest, context: Context
    ) -> spb.ListVersionsResponse:
        schema_id, versions = await self._call(context, lambda: self._registry.list_versions(request.subject))
        return spb.ListVersionsResponse(
            versions=[
                spb.SchemaVersionInfo(
                    version=v.version,
                    created_at=v.created_at,
                    created_by=v.created_by,
                    description=v.description,
                    fingerprint=v.fingerprint,
                    schema_id=schema_id,
                )
                for v in versions
            ]
        )

    async def CheckCompatibility(
        self, request: spb.CheckCompatibilityRequest, context: Context
    ) -> spb.CheckCompatibilityResponse:
        mode = request.compatibility_mode if request.HasField("compatibility_mode") else None
        errors = await self._call(
            context,
            lambda: self._registry.check_compatibility(
                request.subject, request.schema_type, request.new_schema_definition, mode
            ),
        )
        return spb.CheckCompatibilityResponse(is_compatible=not errors, errors=errors)

    async def DeleteSchemaVersion(
        self, request: spb.DeleteSchemaVersionRequest, context: Context
    ) -> spb.DeleteSchemaVersionResponse:
        await self._call(
            context, lambda: self._registry.delete_schema_version(request.subject, request.version)
        )
        return spb.DeleteSchemaVersionResponse(
            success=True, message=f"Deleted version {request.version} for subject {request.subject}"
        )

    async def SetCompatibilityMode(
        self, request: spb.SetCompatibilityModeRequest, context: Context
    ) -> spb.SetCompatibilityModeResponse:
        mode = await self._call(
            context,
            lambda: self._registry.set_compatibility_mode(request.subject, request.compatibility_mode),
        )
        return spb.SetCompatibilityModeResponse(
            success=True, message=f"Set compatibility mode to {mode} for subject {request.subject}"
        )

    async def ConfigureTopicSchema(
        self, request: spb.ConfigureTopicSchemaRequest, context: Context
    ) -> spb.ConfigureTopicSchemaResponse:
        message = await self._call(
            context,
            lambda: self._registry.configure_topic_schema(
                request.topic_name,
                request.schema_subject,
                request.validation_policy,
                request.enable_payload_validation,
            ),
        )
        return spb.ConfigureTopicSchemaResponse(success=True, message=message)

    async def UpdateTopicValidationPolicy(
        self, request: spb.UpdateTopicValidationPolicyRequest, context: Context
    ) -> spb.UpdateTopicValidationPolicyResponse:
        message = await self._call(
            context,
            lambda: self._registry.update_topic_validation_policy(
                request.topic_name, request.validation_policy, request.enable_payload_validation
            ),
        )
        return spb.UpdateTopicValidationPolicyResponse(success=True, message=message)

    async def GetTopicSchemaConfig(
        self, request: spb.GetTopicSchemaConfigRequest, context: Context
    ) -> spb.GetTopicSchemaConfigResponse:
        config, schema_id = await self._call(
            context, lambda: self._registry.get_topic_schema_config(request.topic_name)
        )
        return spb.GetTopicSchemaConfigResponse(
            schema_subject=config.schema_subject,
            validation_policy=config.validation_policy,
            enable_payload_validation=config.enable_payload_validation,
            schema_id=schema_id,
        )

    async def ListSubjects(
        self, request: spb.ListSubjectsRequest, context: Context
    ) -> spb.ListSubjectsResponse:
        summaries = []
        for record in self._registry.list_subjects():
            latest = record.latest()
            summaries.append(
                spb.SubjectSummary(
                    subject=record.subject,
                    schema_type=latest.schema_type if latest else record.last_schema_type,
                    latest_version=latest.version if latest else 0,
                    compatibility_mode=record.compatibility_mode,
                    schema_id=record.schema_id,
                    tags=latest.tags if latest else [],
                )
            )
        return spb.ListSubjectsResponse(subjects=summaries)
