"""Per-RPC metadata: the JWT bearer token and the proxy routing header (docs/wire-contract.md §1)."""

from __future__ import annotations

import inspect

from .options import TokenSource

AUTHORIZATION_HEADER = "authorization"
PROXY_BROKER_HEADER = "x-danube-broker-url"

Metadata = tuple[tuple[str, str], ...]


class MetadataProvider:
    """Builds the metadata of every RPC.

    A static (or absent) token is rendered once; a callable token is called before every RPC (sync or
    async), so a rotating token is always fresh. The token never appears in logs or error messages
    (invariant 7, docs/architecture.md).
    """

    __slots__ = ("_source", "_static")

    def __init__(self, token: TokenSource | None) -> None:
        self._source = token
        self._static: Metadata | None
        if token is None:
            self._static = ()
        elif isinstance(token, str):
            self._static = ((AUTHORIZATION_HEADER, f"Bearer {token}"),) if token else ()
        else:
            self._static = None

    @property
    def is_static(self) -> bool:
        """True when metadata does not change between RPCs (no token callable)."""
        return self._static is not None

    def static_metadata(self, broker_url: str | None = None) -> Metadata:
        """Metadata when :attr:`is_static`; adds the proxy header for ``broker_url`` when given."""
        assert self._static is not None
        return _with_proxy(self._static, broker_url)

    async def metadata(self, broker_url: str | None = None) -> Metadata:
        """Metadata for one RPC; ``broker_url`` (when a lookup answered proxy=true) adds the proxy header."""
        if self._static is not None:
            return _with_proxy(self._static, broker_url)
        source = self._source
        assert source is not None and not isinstance(source, str)
        value = source()
        token = await value if inspect.isawaitable(value) else value
        base: Metadata = ((AUTHORIZATION_HEADER, f"Bearer {token}"),) if token else ()
        return _with_proxy(base, broker_url)


def _with_proxy(base: Metadata, broker_url: str | None) -> Metadata:
    if broker_url:
        return (*base, (PROXY_BROKER_HEADER, broker_url))
    return base
