"""TLS and mTLS channels (with a JWT on top), against a minimal TLS gRPC server serving ListSubjects.

The embedded broker speaks plaintext only, so this server stands in for a TLS-terminating Danube broker.
Certificates are made with the openssl command line at test time.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from danube_connect_core.client import ClientOptions, DanubeClient, RetriesExhausted, RetryPolicy, TlsOptions
from danube_connect_core.proto import SchemaRegistry_pb2 as spb

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=test-ca", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext", cwd=d)  # fmt: skip
    return d


class TlsRegistry:
    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []

    async def list_subjects(self, request: spb.ListSubjectsRequest, context: Any) -> spb.ListSubjectsResponse:
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata()})
        return spb.ListSubjectsResponse(subjects=[spb.SubjectSummary(subject="tls-ok")])


async def start_server(certs: Path, require_client_auth: bool) -> tuple[grpc.aio.Server, int, TlsRegistry]:
    impl = TlsRegistry()
    handler = grpc.method_handlers_generic_handler(
        "danube_schema.SchemaRegistry",
        {
            "ListSubjects": grpc.unary_unary_rpc_method_handler(
                impl.list_subjects,
                request_deserializer=spb.ListSubjectsRequest.FromString,
                response_serializer=spb.ListSubjectsResponse.SerializeToString,
            )
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    creds = grpc.ssl_server_credentials(
        [((certs / "server.key").read_bytes(), (certs / "server.pem").read_bytes())],
        root_certificates=(certs / "ca.pem").read_bytes(),
        require_client_auth=require_client_auth,
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    return server, port, impl


@pytest_asyncio.fixture
async def tls_server(certs: Path) -> AsyncIterator[tuple[int, TlsRegistry]]:
    server, port, impl = await start_server(certs, require_client_auth=False)
    yield port, impl
    await server.stop(None)


@pytest_asyncio.fixture
async def mtls_server(certs: Path) -> AsyncIterator[int]:
    server, port, _ = await start_server(certs, require_client_auth=True)
    yield port
    await server.stop(None)


async def test_tls_with_ca_and_token(certs: Path, tls_server: tuple[int, TlsRegistry]) -> None:
    port, impl = tls_server
    options = ClientOptions(tls=TlsOptions(ca_file=str(certs / "ca.pem")), token="jwt-abc")
    async with DanubeClient(f"https://localhost:{port}", options) as client:
        subjects = await client.schema_registry.list_subjects()
    assert [s.subject for s in subjects] == ["tls-ok"]
    assert impl.metadata[0]["authorization"] == "Bearer jwt-abc"


async def test_mtls_requires_the_client_certificate(certs: Path, mtls_server: int) -> None:
    fast = RetryPolicy(max_retries=1, base_backoff_ms=10, max_backoff_ms=20)
    mtls = TlsOptions(str(certs / "ca.pem"), str(certs / "client.pem"), str(certs / "client.key"))
    async with DanubeClient(f"https://localhost:{mtls_server}", ClientOptions(tls=mtls)) as client:
        assert [s.subject for s in await client.schema_registry.list_subjects()] == ["tls-ok"]
    server_only = TlsOptions(ca_file=str(certs / "ca.pem"))
    async with DanubeClient(
        f"https://localhost:{mtls_server}", ClientOptions(tls=server_only, retry=fast)
    ) as client:
        with pytest.raises(RetriesExhausted):
            await client.schema_registry.list_subjects()
