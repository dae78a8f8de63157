"""RFC 6265 rules of the cookie jar itself (no network): domain matching, default path,
expiry on the jar's clock, the per-domain and total bounds, and parsing leniency."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wbsrun.protocols.cookies import (
    MAX_COOKIE_BYTES,
    MAX_PER_DOMAIN,
    MAX_TOTAL,
    CookieJar,
    default_path,
    domain_match,
    path_match,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_domain_cookie_goes_to_subdomains_and_a_host_only_one_does_not() -> None:
    jar = CookieJar()
    jar.store("http://shop.example.com/", ["d=1; Domain=.Example.com", "h=2"])
    assert jar.header("http://shop.example.com/") == "d=1; h=2"
    assert jar.header("http://a.shop.example.com/") == "d=1"
    assert jar.header("http://example.com/") == "d=1"
    assert jar.header("http://badexample.com/") is None
    jar.store(
        "http://shop.example.com/", ["x=1; Domain=other.com", "y=1; Domain=a.shop.example.com"]
    )
    assert len(jar) == 2  # neither is a domain of the request host


def test_ip_hosts_match_only_themselves() -> None:
    assert domain_match("127.0.0.1", "127.0.0.1")
    assert domain_match("a.localhost", "localhost")
    assert not domain_match("10.0.0.1", "0.0.1")


def test_default_path_and_path_match_follow_rfc_6265() -> None:
    assert default_path("/a/b/c") == "/a/b"
    assert default_path("/a") == "/"
    assert default_path("") == "/"
    assert path_match("/api/x", "/api")
    assert path_match("/api/", "/api/")
    assert not path_match("/apix", "/api")
    jar = CookieJar()
    jar.store("http://h/docs/page", ["n=1"])
    assert jar.header("http://h/docs/other") == "n=1"
    assert jar.header("http://h/") is None


def test_expiry_follows_the_clock_and_max_age_wins_over_expires() -> None:
    clock = Clock()
    jar = CookieJar(clock)
    jar.store("http://h/", ["a=1; Max-Age=10; Expires=Thu, 01 Jan 1970 00:00:01 GMT", "b=2"])
    assert jar.header("http://h/") == "a=1; b=2"
    clock.now += 10
    assert jar.header("http://h/") == "b=2"


def test_longer_paths_come_first_then_older_cookies() -> None:
    clock = Clock()
    jar = CookieJar(clock)
    jar.store("http://h/", ["late=1"])
    clock.now -= 5
    jar.store("http://h/", ["early=1", "deep=1; Path=/a/b"])
    assert jar.header("http://h/a/b/c") == "deep=1; early=1; late=1"


def test_the_jar_is_bounded_per_domain_and_in_all_dropping_the_oldest() -> None:
    clock = Clock()
    jar = CookieJar(clock)
    for i in range(MAX_PER_DOMAIN + 5):
        clock.now += 1
        jar.store("http://one/", [f"c{i}=1"])
    names = [c.name for c in jar.cookies()]
    assert len(names) == MAX_PER_DOMAIN
    assert "c0" not in names
    assert f"c{MAX_PER_DOMAIN + 4}" in names
    for host in range(MAX_TOTAL // 10 + 2):
        clock.now += 1
        jar.store(f"http://h{host}/", [f"k{i}=1" for i in range(10)])
    assert len(jar) == MAX_TOTAL
    jar.store("http://one/", ["big=" + "x" * MAX_COOKIE_BYTES])
    assert "big" not in [c.name for c in jar.cookies()]


@given(st.text(max_size=200))
def test_any_set_cookie_text_is_parsed_or_ignored_never_raises(text: str) -> None:
    jar = CookieJar()
    jar.store("http://h/p", [text])
    header = jar.header("http://h/p")
    assert header is None or "=" in header
