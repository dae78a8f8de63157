"""Error codes of DSL section 9 and their transient / permanent classification."""

from __future__ import annotations

from typing import Literal

from wbsrun.dsl.expr import ExprError, ExprLimitError

__all__ = [
    "EXPRESSION_ERROR",
    "EXPRESSION_LIMIT",
    "HTTP_4XX",
    "HTTP_5XX",
    "INVALID_CONFIGURATION",
    "LEASE_EXPIRED",
    "NETWORK_TIMEOUT",
    "NO_TRANSITION",
    "PERMANENT_BY_DEFAULT",
    "RESOURCE_UNAVAILABLE",
    "SCHEMA_VIOLATION",
    "STEP_LIMIT",
    "UNAUTHORIZED",
    "Classification",
    "classify",
    "code_for_expression",
    "code_for_status",
]

NETWORK_TIMEOUT = "network-timeout"
RESOURCE_UNAVAILABLE = "resource-unavailable"
LEASE_EXPIRED = "lease-expired"
UNAUTHORIZED = "unauthorized"
INVALID_CONFIGURATION = "invalid-configuration"
SCHEMA_VIOLATION = "schema-violation"
HTTP_4XX = "http-4xx"
HTTP_5XX = "http-5xx"
NO_TRANSITION = "no-transition"
EXPRESSION_ERROR = "expression-error"
EXPRESSION_LIMIT = "expression-limit"
STEP_LIMIT = "step-limit"

# Codes no retry can fix, used when the scenario's catalogue does not list a code.
PERMANENT_BY_DEFAULT = frozenset(
    {
        UNAUTHORIZED,
        INVALID_CONFIGURATION,
        SCHEMA_VIOLATION,
        NO_TRANSITION,
        EXPRESSION_ERROR,
        EXPRESSION_LIMIT,
    }
)

Classification = Literal["transient", "permanent"]


def code_for_status(status: int) -> str | None:
    """The error code of an HTTP status; None for 1xx/2xx/3xx."""
    if status < 400:
        return None
    if status in (401, 403):
        return UNAUTHORIZED
    return HTTP_4XX if status < 500 else HTTP_5XX


def code_for_expression(exc: ExprError) -> str:
    """`expression-limit` when an expression would build a value past a limit, else
    `expression-error`."""
    return EXPRESSION_LIMIT if isinstance(exc, ExprLimitError) else EXPRESSION_ERROR


def classify(
    code: str,
    transient: frozenset[str],
    permanent: frozenset[str],
    default: Classification = "transient",
) -> Classification:
    """The scenario's catalogue decides; unlisted http-4xx/5xx are transient (DSL §9)."""
    if code in permanent:
        return "permanent"
    if code in transient:
        return "transient"
    if code in (HTTP_4XX, HTTP_5XX):
        return "transient"
    if code in PERMANENT_BY_DEFAULT:
        return "permanent"
    return default
