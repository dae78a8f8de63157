"""The fast HTTP/1.1 transport: asyncio Protocols + httptools' parser, keep-alive pools."""

from wbsrun.protocols.h1._client import (
    H1Client,
    HeaderItems,
    Reply,
    Target,
    Timeouts,
    build_head,
    parse_target,
)
from wbsrun.protocols.h1._connection import MAX_HEAD_BYTES, H1Connection, Origin, origin_key
from wbsrun.protocols.h1._errors import (
    PROTOCOL_ERROR,
    BodyTooLarge,
    ConnectFailed,
    ConnectionLost,
    DecodeFailed,
    InvalidRequest,
    ProtocolViolation,
    Timeout,
    TransportError,
    body_too_large,
    os_reason,
)
from wbsrun.protocols.h1._head import RawHeaders, header_pairs
from wbsrun.protocols.h1._pool import ConnectionPool, PoolStatistics, default_ssl_context

__all__ = [
    "MAX_HEAD_BYTES",
    "PROTOCOL_ERROR",
    "BodyTooLarge",
    "ConnectFailed",
    "ConnectionLost",
    "ConnectionPool",
    "DecodeFailed",
    "H1Client",
    "H1Connection",
    "HeaderItems",
    "InvalidRequest",
    "Origin",
    "PoolStatistics",
    "ProtocolViolation",
    "RawHeaders",
    "Reply",
    "Target",
    "Timeout",
    "Timeouts",
    "TransportError",
    "body_too_large",
    "build_head",
    "default_ssl_context",
    "header_pairs",
    "origin_key",
    "os_reason",
    "parse_target",
]
