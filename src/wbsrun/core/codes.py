"""Error codes of DSL section 9 and their transient / permanent classification."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from wbsrun.dsl.expr import ExprError, ExprLimitError

__all__ = [
    "BODY_TOO_LARGE",
    "CAPTURE_FAILED",
    "CHECK_FAILED",
    "DATA_ERROR",
    "DATA_EXHAUSTED",
    "DESCRIPTIONS",
    "EXPRESSION_ERROR",
    "EXPRESSION_LIMIT",
    "HTTP_4XX",
    "HTTP_5XX",
    "INVALID_CONFIGURATION",
    "LEASE_EXPIRED",
    "NETWORK_TIMEOUT",
    "NO_TRANSITION",
    "PERMANENT_BY_DEFAULT",
    "PERSIST_ERROR",
    "PLUGIN_OUT_OF_FUEL",
    "PLUGIN_OUT_OF_MEMORY",
    "PLUGIN_TRAP",
    "PLUGIN_WRONG_TYPE",
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
# Not in DSL §9's list: wbsrun's own bounds (docs/operations.md "Limits").
BODY_TOO_LARGE = "body-too-large"
PERSIST_ERROR = "persist-error"
# Captures and checks (docs/dsl.md "Captures and checks").
CAPTURE_FAILED = "capture-failed"
CHECK_FAILED = "check-failed"
# Data feeders (docs/dsl.md "Data feeders").
DATA_EXHAUSTED = "data-exhausted"
DATA_ERROR = "data-error"
# WebAssembly plugins (docs/wasi.md "When a plugin fails"): the action fails, never the run.
PLUGIN_TRAP = "plugin-trap"
PLUGIN_OUT_OF_FUEL = "plugin-out-of-fuel"
PLUGIN_OUT_OF_MEMORY = "plugin-out-of-memory"
PLUGIN_WRONG_TYPE = "plugin-wrong-type"

# What each code means, for docs and messages (the HTTP transports add `protocol-error`).
DESCRIPTIONS: Mapping[str, str] = {
    NETWORK_TIMEOUT: "no answer in time: connect, read or total request timeout, or the"
    " action's or pass's timeout",
    RESOURCE_UNAVAILABLE: "refused, unreachable or reset connection, body cut short or"
    " undecodable; no resource item free in time",
    LEASE_EXPIRED: "a resource lease ran out under the action",
    UNAUTHORIZED: "HTTP 401 or 403",
    INVALID_CONFIGURATION: "a request that cannot be sent as configured (bad URL, bad"
    " header, bad argument value)",
    SCHEMA_VIOLATION: "an answer that does not have the expected shape",
    HTTP_4XX: "HTTP 4xx other than 401 and 403",
    HTTP_5XX: "HTTP 5xx",
    NO_TRANSITION: "no transition of the node matched",
    EXPRESSION_ERROR: "a template or condition failed at run time",
    STEP_LIMIT: "a pass visited too many nodes (a loop without an exit)",
    BODY_TOO_LARGE: "a response body over the max-body limit (announced or received; the"
    " connection is dropped), or a persist file that would be",
    DATA_EXHAUSTED: "a sequential or unique data source with no row left (on-exhausted: error)",
    DATA_ERROR: "a data source's row that cannot be read (malformed CSV or JSON, not UTF-8,"
    " too long): the message names file:line",
    PERSIST_ERROR: "a save-as persist file that cannot be written: a file name that is not"
    " a single safe name, or a failed write",
    CAPTURE_FAILED: "a capture found nothing and has no default (and is not optional)",
    CHECK_FAILED: "a check with on-fail: error did not hold",
    PLUGIN_TRAP: "a WebAssembly plugin trapped (unreachable, out-of-bounds access, a refused"
    " memory.grow it did not survive); its instance is replaced",
    PLUGIN_OUT_OF_FUEL: "a WebAssembly plugin's call used up its fuel (metadata.fuel): a loop",
    PLUGIN_OUT_OF_MEMORY: "a WebAssembly plugin's instance needs more than its memory limit"
    " (metadata.memory-limit)",
    PLUGIN_WRONG_TYPE: "a WebAssembly plugin answered a value of the wrong type (not its WIT"
    " world's, or value-json that is not a JSON object)",
}

# Codes no retry can fix, used when the scenario's catalogue does not list a code.
PERMANENT_BY_DEFAULT = frozenset(
    {
        UNAUTHORIZED,
        INVALID_CONFIGURATION,
        SCHEMA_VIOLATION,
        NO_TRANSITION,
        EXPRESSION_ERROR,
        EXPRESSION_LIMIT,
        DATA_EXHAUSTED,
        DATA_ERROR,
        PLUGIN_TRAP,
        PLUGIN_OUT_OF_FUEL,
        PLUGIN_OUT_OF_MEMORY,
        PLUGIN_WRONG_TYPE,
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
