"""Where webhooks may connect: the address policy, the literal forms the system resolver turns into
loopback, a resolver that answers a public address first and loopback later (DNS rebinding), and
pinning (the connection goes to the address that was checked)."""

import asyncio
import ipaddress

import httpcore2
import pytest

from service.webhooks import network
from tests.webhooks.receiver import Receiver

REFUSED = [
    "127.0.0.1",
    "127.255.0.9",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # shared address space (CGNAT)
    "0.0.0.0",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::1",  # 6to4 around 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254
    "2001:db8::1",  # documentation
]
PUBLIC = ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:93.184.216.34"]


@pytest.mark.parametrize("text", REFUSED)
def test_not_public_addresses_are_refused_by_default(text: str) -> None:
    assert not network.Policy().allows_address(ipaddress.ip_address(text))


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_are_allowed(text: str) -> None:
    assert network.Policy().allows_address(ipaddress.ip_address(text))


def test_the_allow_list_permits_networks_and_host_names() -> None:
    policy = network.Policy.parse(" 127.0.0.1 , 10.0.0.0/8, fd00::/8, hooks.example, .internal")
    for text in ("127.0.0.1", "::ffff:127.0.0.1", "10.9.8.7", "fd00::5"):
        assert policy.allows_address(ipaddress.ip_address(text)), text
    for text in ("127.0.0.2", "192.168.0.1", "::1", "169.254.169.254"):
        assert not policy.allows_address(ipaddress.ip_address(text)), text
    assert policy.allows_host("hooks.example") and policy.allows_host("HOOKS.example.")
    assert policy.allows_host("ci.build.internal")
    assert not policy.allows_host("other.example") and not policy.allows_host("xinternal")


@pytest.mark.parametrize("host", ["0x7f000001", "2130706433", "0177.0.0.1", "127.1", "localhost"])
def test_odd_literal_forms_of_loopback_are_refused_after_resolving(host: str) -> None:
    backend = network.GuardedBackend(network.Policy())
    with pytest.raises(network.AddressNotAllowed):
        asyncio.run(backend.addresses(host, 80))


def test_a_host_with_one_private_address_among_public_ones_is_refused() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.1"]

    backend = network.GuardedBackend(network.Policy(), resolver)
    with pytest.raises(network.AddressNotAllowed):
        asyncio.run(backend.addresses("mixed.example", 80))


class Rebinding:
    """A DNS server that answers a public address first, then loopback (a short TTL)."""

    def __init__(self) -> None:
        self.asked = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked += 1
        return ["93.184.216.34"] if self.asked == 1 else ["127.0.0.1"]


def test_dns_rebinding_after_a_check_at_submit_is_refused_at_connect() -> None:
    resolver = Rebinding()
    with Receiver() as receiver:
        port = receiver.server.server_address[1]
        url = f"http://rebound.example:{port}/hook"

        async def deliver() -> None:
            # A check at submit time would pass: the name resolves to a public address then.
            checked = network.GuardedBackend(network.Policy(), resolver)
            assert await checked.addresses("rebound.example", port) == ["93.184.216.34"]
            async with network.client("", 4, 5.0, resolver) as client:
                await client.post(url, content=b"{}")

        with pytest.raises(network.AddressNotAllowed):
            asyncio.run(deliver())
        assert resolver.asked == 2  # resolved again at connect time, and refused
    assert receiver.received == []


def test_the_connection_goes_to_the_address_that_was_checked() -> None:
    """Pinned: the name is not resolved again by the socket layer (the system resolver does not
    know it); the connection is made to the checked address."""

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    with Receiver() as receiver:
        port = receiver.server.server_address[1]

        async def deliver() -> int:
            async with network.client("127.0.0.1/32", 4, 5.0, resolver) as client:
                response = await client.post(f"http://pinned.invalid:{port}/hook", content=b"x")
                return response.status_code

        assert asyncio.run(deliver()) == 200
        [received] = receiver.wait_for(1)
    assert received.body == b"x" and received.headers["host"] == f"pinned.invalid:{port}"


def test_unix_sockets_and_proxies_from_the_environment_are_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = network.GuardedBackend(network.Policy())
    with pytest.raises(network.AddressNotAllowed):
        asyncio.run(backend.connect_unix_socket("/var/run/docker.sock"))
    # A proxy would resolve the name itself, past every check here.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")

    async def post() -> None:
        async with network.client("", 4, 5.0) as client:
            await client.post("http://127.0.0.1:9/hook")

    with pytest.raises(network.AddressNotAllowed):
        asyncio.run(post())


def test_a_name_that_does_not_resolve_is_a_connect_error() -> None:
    backend = network.GuardedBackend(network.Policy())
    with pytest.raises(httpcore2.ConnectError):
        asyncio.run(backend.addresses("no-such-host.invalid", 80))
