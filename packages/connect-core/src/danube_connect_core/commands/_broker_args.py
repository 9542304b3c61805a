"""Options shared by the subcommands that talk to a broker."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..client import ClientOptions

DEFAULT_SERVICE_URL = "http://127.0.0.1:6650"


def add_service_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--service-url",
        default=os.environ.get("DANUBE_SERVICE_URL", DEFAULT_SERVICE_URL),
        help="broker URL (default: $DANUBE_SERVICE_URL or %(default)s)",
    )
    parser.add_argument(
        "--token-env",
        metavar="VAR",
        help="name of an environment variable holding a JWT to send as bearer token",
    )
    parser.add_argument("--ca-file", help="PEM CA bundle: enables TLS")
    parser.add_argument("--cert-file", help="PEM client certificate (mTLS, with --key-file)")
    parser.add_argument("--key-file", help="PEM client key (mTLS, with --cert-file)")


def client_options(args: argparse.Namespace, max_retries: int | None = None) -> ClientOptions:
    """ClientOptions from the shared arguments (imported lazily: keeps `--help` fast)."""
    from ..client import ClientOptions, RetryPolicy, TlsOptions

    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            raise ValueError(f"environment variable {args.token_env} is not set")
    tls = None
    if args.ca_file or args.cert_file or args.key_file:
        tls = TlsOptions(args.ca_file, args.cert_file, args.key_file)
    retry = RetryPolicy() if max_retries is None else RetryPolicy(max_retries=max_retries)
    return ClientOptions(tls=tls, token=token, retry=retry)
