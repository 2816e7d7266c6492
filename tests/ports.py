"""Free TCP ports for tests, chosen outside the kernel's ephemeral range.

A port found by binding port 0 is an ephemeral port: between the moment the
test lets it go and the moment the daemon binds it, any outgoing connection
on the machine (another test's clients, say) may take it as its local port,
and the daemon then fails with "address in use". Ports below the ephemeral
range are never given to outgoing connections, so only another test picking
the same random port could collide."""
import random
import socket


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port, hosts):
    for family, host in hosts:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError as e:
                if family == socket.AF_INET6 and e.errno == 99:  # EADDRNOTAVAIL: no ::1 here
                    continue
                return False
    return True


def free_port(hosts=((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"))):
    """A TCP port free on every one of hosts (loopback IPv4 and IPv6) a moment ago."""
    lo, hi = _ephemeral_range()
    pool = range(10000, lo) if lo > 11000 else range(hi + 1, 65536)
    for _ in range(500):
        port = random.choice(pool)
        if _bindable(port, hosts):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # last resort
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def have_ipv6():
    """Whether ::1 can be bound here (some containers have no IPv6)."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False
