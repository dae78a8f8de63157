"""`wbsrun ctl`'s side: one request to a run's control endpoint (stdlib HTTP, no loop)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

__all__ = ["ControlClient", "ControlClientError"]

# A control call is answered at once by the run's loop; a run too busy to answer in this long
# is reported, never waited on for ever.
TIMEOUT = 10.0
# The largest answer read (a status of many scenarios is a few KiB).
MAX_ANSWER = 1024 * 1024


class ControlClientError(Exception):
    """A request that failed: `status` the HTTP status (0: no answer), `message` why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ControlClient:
    """Calls one run's endpoint at `url` (http://HOST:PORT) with `token`."""

    def __init__(self, url: str, token: str, timeout: float = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/v1/status")

    def pause(self) -> dict[str, Any]:
        return self._call("POST", "/v1/pause")

    def resume(self) -> dict[str, Any]:
        return self._call("POST", "/v1/resume")

    def stop(self) -> dict[str, Any]:
        return self._call("POST", "/v1/stop")

    def scale(self, scenario: str, users: int) -> dict[str, Any]:
        return self._call("POST", "/v1/scale", {"scenario": scenario, "users": users})

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        if not self.url.startswith(("http://", "https://")):
            raise ControlClientError(
                0, f"'{self.url}': expected a URL such as http://127.0.0.1:9465"
            )
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            self.url + path, data=data, method=method
        )
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                return _json(answer.read(MAX_ANSWER))
        except urllib.error.HTTPError as exc:
            detail = _json(exc.read(MAX_ANSWER)).get("detail") or exc.reason
            raise ControlClientError(exc.code, f"{exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ControlClientError(0, f"no run answers at {self.url} ({reason})") from None


def _json(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
