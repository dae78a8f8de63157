"""The `http` component's conveniences: auth headers, form and multipart bodies, TLS contexts,
and the `Set-Cookie` values of a response, whichever transport read it.

Called only for requests that use them: a request without `auth`, `form`, `multipart`,
`body-from` or cookies costs none of this.
"""

from __future__ import annotations

import base64
import ssl
import uuid
from collections.abc import Mapping
from typing import Any, Final

from wbsrun.dsl.plan import TlsSpec
from wbsrun.dsl.template import to_text
from wbsrun.errors import RunError
from wbsrun.protocols.h1 import RawHeaders

__all__ = [
    "ConvenienceError",
    "auth_header",
    "form_body",
    "multipart_body",
    "redirect_location",
    "set_cookies",
    "tls_context",
]

_SET_COOKIE: Final = b"\nset-cookie:"
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})


class ConvenienceError(ValueError):
    """A `with` value these helpers cannot use: the call fails with invalid-configuration."""


def auth_header(value: Any) -> str:
    """`{basic: {username, password}}` or `{bearer: TOKEN}` as an Authorization value."""
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ConvenienceError(
            f"auth: expected {{basic: {{username, password}}}} or {{bearer: TOKEN}}, got {value!r}"
        )
    kind, arg = next(iter(value.items()))
    if kind == "bearer":
        token = to_text(arg)
        if not token or "\r" in token or "\n" in token:
            raise ConvenienceError(f"auth.bearer: expected a token without CR/LF, got {token!r}")
        return f"Bearer {token}"
    if kind == "basic" and isinstance(arg, Mapping) and "username" in arg:
        user, password = to_text(arg["username"]), to_text(arg.get("password", ""))
        if ":" in user:
            raise ConvenienceError(f"auth.basic.username: no ':' allowed (RFC 7617), got {user!r}")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return f"Basic {token}"
    raise ConvenienceError(
        f"auth: expected {{basic: {{username, password}}}} or {{bearer: TOKEN}}, got {value!r}"
    )


def form_body(value: Any) -> bytes:
    """`{k: v}` as application/x-www-form-urlencoded (a list value repeats its key)."""
    from urllib.parse import urlencode

    if not isinstance(value, Mapping):
        raise ConvenienceError(f"form: expected a mapping of fields, got {value!r}")
    pairs: list[tuple[str, str]] = []
    for key, item in value.items():
        items = item if isinstance(item, list | tuple) else (item,)
        pairs.extend((str(key), to_text(one)) for one in items)
    return urlencode(pairs).encode("ascii")


def _quoted(text: str) -> str:
    """A quoted-string for Content-Disposition parameters (as browsers: CR, LF, `"` escaped)."""
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def multipart_body(parts: Any, blob: Any) -> tuple[bytes, str]:
    """`[{name, value} | {name, file, filename, content-type}]` as multipart/form-data (RFC
    7578); `blob(name)` gives a file_blob's bytes. Returns the body and its Content-Type."""
    if not isinstance(parts, list | tuple) or not parts:
        raise ConvenienceError(f"multipart: expected a non-empty list of parts, got {parts!r}")
    boundary = f"wbsrun-{uuid.uuid4().hex}"
    chunks: list[bytes] = []
    for index, part in enumerate(parts):
        if not isinstance(part, Mapping) or "name" not in part:
            raise ConvenienceError(f"multipart[{index}]: expected {{name, value | file}}")
        name = _quoted(to_text(part["name"]))
        if "file" in part:
            data: bytes = blob(to_text(part["file"]))
            filename = _quoted(to_text(part.get("filename", part["file"])))
            kind = to_text(part.get("content-type", "application/octet-stream"))
            head = (
                f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {kind}\r\n"
            )
        elif "value" in part:
            value = part["value"]
            data = value if isinstance(value, bytes) else to_text(value).encode()
            head = f'Content-Disposition: form-data; name="{name}"\r\n'
            if "content-type" in part:
                head += f"Content-Type: {to_text(part['content-type'])}\r\n"
        else:
            raise ConvenienceError(f"multipart[{index}] '{name}': expected value or file")
        if "\r" in head.replace("\r\n", "") or "\n" in head.replace("\r\n", ""):
            raise ConvenienceError(f"multipart[{index}]: CR or LF in a part header")
        chunks += [f"--{boundary}\r\n".encode(), head.encode(), b"\r\n", data, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def set_cookies(headers: Any) -> list[str]:
    """The `Set-Cookie` values of a response's headers, as either transport keeps them; the
    fast one's raw head is searched first (one lower-cased copy, no parsing when absent)."""
    if isinstance(headers, RawHeaders):
        head = headers.head
        if head.lower().find(_SET_COOKIE) < 0:
            return []
        return [v.decode("latin-1") for k, v in headers.pairs() if k.lower() == b"set-cookie"]
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return [str(v) for v in getall("Set-Cookie", ())]
    return []


def redirect_location(status: int, headers: Any) -> str | None:
    """The Location of a redirect answer (301, 302, 303, 307, 308), else None."""
    if status not in _REDIRECTS:
        return None
    if isinstance(headers, RawHeaders):
        for name, value in headers.pairs():
            if name.lower() == b"location":
                return value.decode("latin-1")
        return None
    location = headers.get("Location")
    return str(location) if location is not None else None


def tls_context(spec: TlsSpec) -> ssl.SSLContext:
    """The client context of an http component's `tls:` (RunError naming the file that
    cannot be loaded)."""
    ctx = ssl.create_default_context()
    try:
        if spec.ca_file is not None:
            ctx.load_verify_locations(cafile=str(spec.ca_file))
        if spec.cert_file is not None:
            key = str(spec.key_file) if spec.key_file is not None else None
            ctx.load_cert_chain(str(spec.cert_file), key)
    except (OSError, ssl.SSLError) as exc:
        raise RunError(f"http tls: cannot load certificates: {exc}") from exc
    if not spec.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
