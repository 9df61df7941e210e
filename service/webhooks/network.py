"""Where a webhook may connect. The host is resolved when the connection is made, every address it
resolves to is checked, and the connection goes to a checked address: a check made when the URL
was submitted would let DNS answer differently later (rebinding), this one cannot be raced.

Refused by default: loopback, private, link-local, shared (CGNAT), multicast, reserved and
unspecified addresses, in IPv4, IPv6 and the IPv6 forms that carry an IPv4 address (mapped,
6to4, NAT64). DENDRITE_WEBHOOK_ALLOWED_HOSTS lets an operator permit internal receivers.
"""

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import anyio
import httpcore2
import httpx2

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses to try, in order
Resolver = Callable[[str, int], Awaitable[list[str]]]

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class AddressNotAllowed(Exception):
    """The callback host is, or resolves to, an address webhooks may not reach."""


@dataclass(frozen=True)
class Policy:
    """The operator's exceptions to the public-only rule."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()  # exact names, lower case
    suffixes: tuple[str, ...] = ()  # ".internal": every name under it

    @classmethod
    def parse(cls, text: str) -> "Policy":
        """From DENDRITE_WEBHOOK_ALLOWED_HOSTS: networks, addresses, host names; comma-separated."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        suffixes: list[str] = []
        for entry in filter(None, (part.strip().lower() for part in text.split(","))):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                name = entry.removeprefix("*").rstrip(".")
                if name.startswith("."):
                    suffixes.append(name)
                else:
                    hosts.add(name)
        return cls(tuple(networks), frozenset(hosts), tuple(suffixes))

    def allows_host(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return name in self.hosts or name.endswith(self.suffixes)

    def allows_address(self, address: IPAddress) -> bool:
        unwrapped = _unmapped(address)
        if any(unwrapped in network or address in network for network in self.networks):
            return True
        return all(_public(carried) for carried in _carried(address))


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _carried(address: IPAddress) -> Iterable[IPAddress]:
    """The address (for an IPv4-mapped one, the IPv4), and any IPv4 address reached through it."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        yield address.ipv4_mapped
        return
    yield address
    if isinstance(address, ipaddress.IPv6Address):
        if address.sixtofour is not None:
            yield address.sixtofour
        if address in NAT64:
            yield ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def _public(address: IPAddress) -> bool:
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


async def resolve(host: str, port: int) -> list[str]:
    """The system resolver (literal forms like 0x7f000001 or 2130706433 come back as 127.0.0.1)."""
    try:
        found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise httpcore2.ConnectError(f"cannot resolve {host!r}") from error
    return list(dict.fromkeys(str(info[4][0]) for info in found))


class GuardedBackend(httpcore2.AsyncNetworkBackend):
    """A network backend that connects only to addresses the policy allows, pinned: the address
    checked is the address connected to (TLS still verifies the certificate for the host name)."""

    def __init__(
        self,
        policy: Policy,
        resolver: Resolver = resolve,
        backend: httpcore2.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.backend = backend or httpcore2.AnyIOBackend()

    async def addresses(self, host: str, port: int) -> list[str]:
        """Every address `host` resolves to, if each one is allowed."""
        found = await self.resolver(host, port)
        if not found:
            raise httpcore2.ConnectError(f"{host!r} has no address")
        if self.policy.allows_host(host):
            return found
        for text in found:
            address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 scope
            if not self.policy.allows_address(address):
                raise AddressNotAllowed(f"{host!r} resolves to {address}, which is not allowed")
        return found

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await self.addresses(host, port):
            try:
                return await self.backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore2.ConnectError as error:  # the next address may answer
                failure = error
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise AddressNotAllowed("webhooks never connect to a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class GuardedTransport(httpx2.AsyncHTTPTransport):
    """httpx2's transport over a `GuardedBackend`, never through a proxy from the environment."""

    def __init__(self, policy: Policy, max_connections: int, resolver: Resolver = resolve) -> None:
        super().__init__(trust_env=False)
        # httpx2's transport takes no network backend (encode/httpx#3749 adds the option), so
        # its pool is replaced by one that has ours; requests and errors still go through httpx2.
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(policy, resolver),
        )


def client(
    allowed_hosts: str, max_connections: int, timeout: float, resolver: Resolver = resolve
) -> httpx2.AsyncClient:
    """The HTTP client webhooks are sent with: checked addresses, no redirects, no proxies.
    `timeout` bounds each step; the caller bounds the whole exchange."""
    transport = GuardedTransport(Policy.parse(allowed_hosts), max_connections, resolver)
    return httpx2.AsyncClient(
        transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
    )
