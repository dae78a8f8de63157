"""The http result: decoded lazily, and shrunk back to its bytes when its entry closes."""

from __future__ import annotations

from wbsrun.protocols.http import HttpResult


def test_a_shrunk_result_reads_the_same_and_holds_only_its_bytes() -> None:
    raw_headers = [(b"Content-Type", b"application/json"), (b"X-Id", b"7")]
    result = HttpResult(200, b'{"asset": {"id": 7}}', raw_headers, 1.25)
    before = dict(result)
    assert before["json"] == {"asset": {"id": 7}}
    assert before["headers"] == {"content-type": "application/json", "x-id": "7"}
    result.shrink()
    assert (result._text, result._hmap) == (None, None)
    assert result._raw == b'{"asset": {"id": 7}}'
    assert result._headers == b"Content-Type\0application/json\0X-Id\x007"
    assert dict(result) == before  # decoded again on the next read


def test_shrinking_a_result_without_headers_keeps_it_readable() -> None:
    result = HttpResult(204, b"", [], 0.5)
    result.shrink()
    assert dict(result) == {
        "status": 204,
        "ok": True,
        "body": "",
        "json": None,
        "headers": {},
        "latency_ms": 0.5,
    }
