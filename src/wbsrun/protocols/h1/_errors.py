"""The fast transport's failures and the one place they become DSL §9 error codes.

    TransportError                   code
    ├── InvalidRequest               invalid-configuration  (bad URL, CR/LF in a header)
    ├── ConnectFailed                resource-unavailable   (refused, unreachable, TLS refused)
    ├── ConnectionLost               resource-unavailable   (reset / closed mid-response)
    ├── ProtocolViolation            protocol-error         (garbage status line, head too large)
    ├── DecodeFailed                 resource-unavailable   (broken gzip/deflate body)
    ├── BodyTooLarge                 body-too-large         (body over the max-body limit)
    └── Timeout                      network-timeout        (connect, read or total deadline)

The aiohttp transport maps its own errors to the same codes (protocols/_aiohttp.py), so a
scenario's error counts do not depend on the transport.
"""

from __future__ import annotations

import os
import socket
import ssl
from typing import Final

from wbsrun.core import codes

__all__ = [
    "PROTOCOL_ERROR",
    "BodyTooLarge",
    "ConnectFailed",
    "ConnectionLost",
    "DecodeFailed",
    "InvalidRequest",
    "ProtocolViolation",
    "Timeout",
    "TransportError",
    "body_too_large",
    "os_reason",
]

# Not in DSL §9's list: a server that does not speak HTTP/1.1. Transient unless catalogued.
PROTOCOL_ERROR: Final = "protocol-error"


class TransportError(Exception):
    """Base of the fast transport's failures; `code` is the scenario-facing error code."""

    code: str = PROTOCOL_ERROR


class InvalidRequest(TransportError):
    code = codes.INVALID_CONFIGURATION


class ConnectFailed(TransportError):
    code = codes.RESOURCE_UNAVAILABLE


class ConnectionLost(TransportError):
    code = codes.RESOURCE_UNAVAILABLE


class ProtocolViolation(TransportError):
    code = PROTOCOL_ERROR


class DecodeFailed(TransportError):
    code = codes.RESOURCE_UNAVAILABLE


class BodyTooLarge(TransportError):
    code = codes.BODY_TOO_LARGE


class Timeout(TransportError):
    code = codes.NETWORK_TIMEOUT


def os_reason(exc: OSError) -> str:
    """What a failed connect says: `[Errno 111] Connection refused`, the errno's own text,
    where asyncio's says `Connect call failed ('127.0.0.1', 5)` (the address is in the
    message already). TLS and name-lookup errors keep theirs: their errno is not the OS's."""
    if exc.errno and exc.errno > 0 and not isinstance(exc, ssl.SSLError | socket.gaierror):
        return f"[Errno {exc.errno}] {os.strerror(exc.errno)}"
    return str(exc)


def body_too_large(size: int, limit: int, how: str) -> BodyTooLarge:
    """`how`: "announces" (Content-Length), "reached" (bytes received), "decodes to more than"."""
    return BodyTooLarge(f"response body {how} {size} bytes, over the max-body limit of {limit}")
