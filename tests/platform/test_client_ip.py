"""The client's address: X-Forwarded-For is believed only from TRUSTED_PROXIES, right to left up to
the first address that is not a trusted proxy; anything a client writes further left is ignored."""

from __future__ import annotations

import pytest

from app.config import Settings, parse_networks
from app.platform.http.client_ip import client_ip

TRUSTED = parse_networks("127.0.0.1, ::1, 10.0.0.0/8")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        ("203.0.113.5", [], "203.0.113.5"),  # no proxy
        ("203.0.113.5", ["192.0.2.1"], "203.0.113.5"),  # an untrusted peer's header is ignored
        ("127.0.0.1", [], "127.0.0.1"),
        ("127.0.0.1", ["192.0.2.1"], "192.0.2.1"),
        ("127.0.0.1", ["6.6.6.6, 192.0.2.1"], "192.0.2.1"),  # the left one is the client's own claim
        ("10.1.2.3", ["6.6.6.6, 192.0.2.1, 10.4.4.4"], "192.0.2.1"),  # through two trusted proxies
        ("10.1.2.3", ["6.6.6.6", "192.0.2.1"], "192.0.2.1"),  # several header lines
        ("127.0.0.1", ["192.0.2.1:5555"], "192.0.2.1"),
        ("127.0.0.1", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("::1", ["2001:DB8:0::1"], "2001:db8::1"),  # canonical text
        ("::ffff:127.0.0.1", ["192.0.2.1"], "192.0.2.1"),  # an IPv4-mapped peer
        ("127.0.0.1", ["garbage, 192.0.2.1"], "192.0.2.1"),
        ("127.0.0.1", ["192.0.2.1, garbage"], "127.0.0.1"),  # the trusted hop is all we know
        ("127.0.0.1", ["10.0.0.1"], "10.0.0.1"),  # every hop trusted: the farthest
        (None, ["192.0.2.1"], None),
        ("unix-socket", ["192.0.2.1"], "unix-socket"),
    ],
)
def test_client_ip(peer, forwarded_for, expected):
    assert client_ip(peer, forwarded_for, TRUSTED) == expected


def test_nothing_is_trusted_with_an_empty_list():
    assert client_ip("127.0.0.1", ["192.0.2.1"], ()) == "127.0.0.1"


def test_trusted_proxies_setting_refuses_what_is_no_address():
    with pytest.raises(ValueError, match=r"'proxy\.local' is not an IP address or network"):
        Settings(environment="test", secret_key="k" * 40, trusted_proxies="10.0.0.0/8, proxy.local")
    assert Settings(environment="test", secret_key="k" * 40, trusted_proxies="").trusted_proxy_networks == ()
