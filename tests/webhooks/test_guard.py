"""The address guard: every private, loopback, link-local, CGNAT, reserved address and
its IPv6 forms is refused; a name is resolved once and any forbidden answer refuses it."""

from __future__ import annotations

import ipaddress

import pytest

from jobrunner.webhooks.guard import Refused, forbidden_reason, vet

FORBIDDEN = [
    ("127.0.0.1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("0.0.0.0", "0.0.0.0/8"),
    ("0.1.2.3", "0.0.0.0/8"),
    ("224.0.0.1", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "240.0.0.1 is"),  # reserved (the module calls it private)
    ("198.18.0.1", "benchmarking"),
    ("192.0.2.1", "192.0.2.1 is"),  # TEST-NET-1, documentation
    ("192.0.0.8", "IETF"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("ff02::1", "multicast"),
    ("fec0::1", "site-local"),
    ("2001:db8::1", "2001:db8::1 is"),  # documentation
    ("2001::1", "Teredo"),
    ("::ffff:127.0.0.1", "127.0.0.1"),  # IPv4-mapped, normalised
    ("::ffff:7f00:1", "127.0.0.1"),
    ("::ffff:169.254.169.254", "169.254.169.254"),
    ("2002:7f00:1::", "127.0.0.1"),  # 6to4 of loopback
    ("2002:a00:1::1", "10.0.0.1"),
    ("64:ff9b::a00:1", "10.0.0.1"),  # NAT64 of a private address
    ("64:ff9b::7f00:1", "127.0.0.1"),
    ("::127.0.0.1", "127.0.0.1"),  # IPv4-compatible
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:2800:220:1::1", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize(("address", "why"), FORBIDDEN)
def test_forbidden_addresses_say_why(address: str, why: str) -> None:
    reason = forbidden_reason(ipaddress.ip_address(address))
    assert reason is not None and why in reason, reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def resolver(answers: dict[str, list[str]], calls: list[str]):  # noqa: ANN201
    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[host]

    return resolve


def test_a_name_is_resolved_once_and_any_forbidden_answer_refuses_it() -> None:
    calls: list[str] = []
    resolve = resolver(
        {"ok.example": ["93.184.216.34"], "mixed.example": ["93.184.216.34", "10.0.0.5"]}, calls
    )
    target = vet("https://ok.example/in?x=1", allow_private=False, resolve=resolve)
    assert (target.address, target.host, target.port, target.path) == (
        "93.184.216.34",
        "ok.example",
        443,
        "/in?x=1",
    )
    assert target.connect_url() == "https://93.184.216.34:443/in?x=1"
    assert target.host_header() == "ok.example"
    assert calls == ["ok.example"]
    with pytest.raises(Refused, match="mixed.example resolves to 10.0.0.5 is private"):
        vet("http://mixed.example:8080/", allow_private=False, resolve=resolve)
    assert calls == ["ok.example", "mixed.example"]
    allowed = vet("http://mixed.example:8080/", allow_private=True, resolve=resolve)
    assert allowed.host_header() == "mixed.example:8080"


def test_literal_addresses_and_bad_urls() -> None:
    def never(host: str, port: int) -> list[str]:
        raise AssertionError("a literal address is not resolved")

    with pytest.raises(Refused, match="loopback"):
        vet("http://127.0.0.1:9000/", allow_private=False, resolve=never)
    with pytest.raises(Refused, match="127.0.0.1"):
        vet("http://[::ffff:127.0.0.1]/", allow_private=False, resolve=never)
    v6 = vet("http://[::1]:9000/x", allow_private=True, resolve=never)
    assert v6.connect_url() == "http://[::1]:9000/x" and v6.host_header() == "[::1]:9000"
    for url in ("ftp://h.example/", "https://u:p@h.example/", "https:///x", "h.example"):
        with pytest.raises(Refused):
            vet(url, allow_private=True, resolve=never)

    def broken(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(Refused, match="cannot resolve nowhere.example"):
        vet("https://nowhere.example/", allow_private=False, resolve=broken)
