"""The http component's `auth`, `form`, `multipart`, `body-from` and `tls`, against real servers
on loopback, on both transports: what the server saw (aiohttp parses the bodies)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from http_kit import TRANSPORTS, AppServer, _Log, run_calls, tls_spec
from scenario_kit import act, document, edge, end, graph, run
from wbsrun.core import codes
from wbsrun.core.runner import RunOptions
from wbsrun.errors import RunError


def echoed(outcome: Any) -> dict[str, Any]:
    assert outcome.error is None, outcome.message
    body: dict[str, Any] = json.loads(outcome.value["body"])
    return body


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_basic_and_bearer_auth_reach_the_server_as_authorization(
    app: AppServer, transport: str
) -> None:
    basic, bearer, replaced = run_calls(
        transport,
        [
            (
                "get",
                {"url": app.url("/a"), "auth": {"basic": {"username": "ann", "password": "p:w"}}},
            ),
            ("get", {"url": app.url("/a"), "auth": {"bearer": "tok-123"}}),
            (
                "get",
                {
                    "url": app.url("/a"),
                    "headers": {"authorization": "old"},
                    "auth": {"bearer": "new"},
                },
            ),
        ],
    )
    token = base64.b64encode(b"ann:p:w").decode()
    assert echoed(basic)["authorization"] == f"Basic {token}"
    assert echoed(bearer)["authorization"] == "Bearer tok-123"
    assert echoed(replaced)["authorization"] == "Bearer new"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_auth_fails_the_call_before_sending(app: AppServer, transport: str) -> None:
    [colon, crlf] = run_calls(
        transport,
        [
            ("get", {"url": app.url("/a"), "auth": {"basic": {"username": "a:b"}}}),
            ("get", {"url": app.url("/a"), "auth": {"bearer": "x\r\nEvil: 1"}}),
        ],
    )
    assert colon.error == crlf.error == codes.INVALID_CONFIGURATION
    assert "no ':'" in colon.message
    assert "CR/LF" in crlf.message
    assert app.seen == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_form_is_sent_urlencoded_and_parsed_by_the_server(app: AppServer, transport: str) -> None:
    form = {"user": "ann lee", "tags": ["a", "b&c"], "n": 3}
    [outcome] = run_calls(transport, [("post", {"url": app.url("/f"), "form": form})])
    seen = echoed(outcome)
    assert seen["content_type"] == "application/x-www-form-urlencoded"
    # aiohttp's post() keeps the last value of a repeated key.
    assert seen["fields"] == {"user": "ann lee", "tags": "b&c", "n": "3"}
    assert seen["size"] == len(b"user=ann+lee&tags=a&tags=b%26c&n=3")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_bodies_in_one_call_are_refused(app: AppServer, transport: str) -> None:
    [outcome] = run_calls(
        transport, [("post", {"url": app.url("/f"), "form": {"a": 1}, "body": "x"})]
    )
    assert outcome.error == codes.INVALID_CONFIGURATION
    assert "body and form" in outcome.message


def blob_scenario(app: AppServer, tmp_path: Path, transport: str) -> tuple[Any, bytes]:
    """A scenario with a file_blob `logo`: one multipart upload, one body-from, run for real."""
    data = bytes(range(256)) * 300  # 76.8 kB: written apart from its head on the fast transport
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "logo.bin").write_bytes(data)
    actions = {
        "upload": {
            "component": "http",
            "call": "post",
            "with": {
                "url": app.url("/upload"),
                "multipart": [
                    {"name": "title", "value": "hello"},
                    {
                        "name": "file",
                        "file": "logo",
                        "filename": "logo.png",
                        "content-type": "image/png",
                    },
                ],
            },
        },
        "raw": {
            "component": "http",
            "call": "put",
            "with": {"url": app.url("/raw"), "body-from": "logo"},
        },
        "small": {
            "component": "http",
            "call": "put",
            "with": {"url": app.url("/raw"), "body-from": "logo", "max-body": "1KiB"},
        },
    }
    flow = graph(
        act("upload", "upload", edge("raw")),
        act("raw", "raw", edge("small")),
        act("small", "small", edge("done"), on_error=[{"goto": "done"}]),
        end(),
    )
    doc = document(actions, flow, users=1, iterations=1)
    doc["resources"]["logo"] = {
        "type": "file_blob",
        "provider": {"component": "resource-manager", "calls": {"mount": "mount_file"}},
        "config": {"file": "./logo.bin", "checksum": "auto"},
    }
    doc["components"].append({"name": "resource-manager", "version": "1.0.0", "kind": "native"})
    ran = run(tmp_path, doc, [("127.0.0.1", app.port)], RunOptions(transport=transport))
    return ran, data


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_multipart_with_a_file_blob_part_and_body_from_a_blob_reach_the_server(
    app: AppServer, tmp_path: Path, transport: str
) -> None:
    ran, data = blob_scenario(app, tmp_path, transport)
    digest = hashlib.sha256(data).hexdigest()
    upload, raw = app.seen
    assert upload["content_type"].startswith("multipart/form-data; boundary=")
    assert upload["fields"] == {
        "title": "hello",
        "file": {"filename": "logo.png", "content_type": "image/png", "sha256": digest},
    }
    assert (raw["method"], raw["size"], raw["sha256"]) == ("PUT", len(data), digest)
    assert raw["content_type"] == "application/octet-stream"
    # The third call's blob is over its max-body: refused before sending, counted as an error.
    assert ran.result["errors"] == {codes.BODY_TOO_LARGE: 1}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tls_with_a_ca_file_and_a_client_certificate(
    tls_app: AppServer, pki: dict[str, Path], transport: str
) -> None:
    url = tls_app.url("/tls")
    [trusted] = run_calls(transport, [("get", {"url": url})], spec=tls_spec(ca_file=pki["ca"]))
    assert echoed(trusted)["client"] is None
    [untrusted] = run_calls(transport, [("get", {"url": url})])
    assert untrusted.error == codes.RESOURCE_UNAVAILABLE
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.message
    spec = tls_spec(ca_file=pki["ca"], cert_file=pki["client"], key_file=pki["client-key"])
    [with_cert] = run_calls(transport, [("get", {"url": url})], spec=spec)
    assert echoed(with_cert)["client"] == "wbsrun-client"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_verify_off_accepts_an_unknown_certificate_and_warns_once(
    tls_app: AppServer, transport: str
) -> None:
    log = _Log()
    outcomes = run_calls(
        transport,
        [("get", {"url": tls_app.url("/x")}), ("get", {"url": tls_app.url("/y")})],
        spec=tls_spec(verify=False),
        log=log,
    )
    assert [echoed(o)["path"] for o in outcomes] == ["/x", "/y"]
    warnings = [m for level, m in log.lines if level == "warn"]
    assert len(warnings) == 1
    assert "tls.verify is false" in warnings[0]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_tls_file_that_does_not_load_stops_the_component_at_init(
    tmp_path: Path, transport: str
) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(RunError, match="http tls: cannot load certificates"):
        run_calls(transport, [], spec=tls_spec(ca_file=bad))
