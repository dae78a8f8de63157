"""Default bounds of a run: how long a request may take, how large a response body may be.

Both can be set per action, per component and for the run (docs/operations.md "Limits");
these apply when none is.
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_MAX_BODY", "DEFAULT_REQUEST_TIMEOUT"]

# Seconds: k6's default request timeout.
DEFAULT_REQUEST_TIMEOUT: Final = 60.0
# Bytes of one response body (after gzip/deflate decoding), and of one persist file.
DEFAULT_MAX_BODY: Final = 10 * 1024 * 1024
