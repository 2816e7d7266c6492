#!/usr/bin/python3
"""The .deb under a real systemd: boots the machine's own systemd as PID 1 in
private pid/mount/uts/ipc/cgroup/network namespaces on a throw-away overlay of
/ (host / untouched),
installs the package there with apt, and checks what a user of the package
relies on: the sockets are enabled and listening, the first connection starts
the sandboxed daemon, locks work and are orphaned on disconnect, glock run
by an ordinary user finds the socket and runs a command under a lock, a restart
keeps the sockets and serves a client that connects meanwhile, settings from
/etc/default/glockd apply and survive an upgrade, stop and `apt remove` leave
nothing running, and the journal has the daemon's lines.

Needs root and overlayfs; elsewhere it skips (77) saying why, except on CI
(env CI set) or as root with overlayfs, where it must run.
"""
import ctypes
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pkgtest  # noqa: E402
from pkgtest import log  # noqa: E402

DEB_WAIT_S = 300  # building the .deb (or waiting for the test that builds it)
BOOT_S = 90       # the rest; together under meson's timeout of 420 s
UNIX_PATH = "/run/glockd/socket"
SOCKET_UNITS = ["glockd.socket", "glockd-tcp.socket", "glockd-ws.socket"]


class Failure(Exception):
    pass


def check(cond, what, detail=""):
    if not cond:
        raise Failure(f"{what}\n{detail}" if detail else what)
    log(f"ok: {what}")


def preconditions():
    reasons = []
    root = os.geteuid() == 0
    if not root:
        reasons.append("booting systemd in namespaces needs root")
    overlay = "overlay" in open("/proc/filesystems").read() or os.path.exists(
        f"/lib/modules/{os.uname().release}/kernel/fs/overlayfs")
    if not overlay:
        reasons.append("the kernel has no overlayfs (the throw-away root needs it)")
    for tool in ("unshare", "nsenter", "setpriv"):
        if not shutil.which(tool):
            reasons.append(f"{tool} (util-linux) is missing")
    if not os.access("/lib/systemd/systemd", os.X_OK):
        reasons.append("/lib/systemd/systemd is missing (apt-get install systemd)")
    if not shutil.which("apt-get"):
        reasons.append("apt-get is missing")
    if cgroup2_mount() is None:
        reasons.append("no cgroup2 hierarchy is mounted")
    must = "CI is set" if pkgtest.on_ci() else ("root with overlayfs" if root and overlay
                                                else None)
    pkgtest.skip_or_fail(reasons, must)


def cgroup2_mount():
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, mnt, fstype = line.split()[:3]
            if fstype == "cgroup2":
                return mnt
    return None


# ---- Talking to sockets: the unix socket through /proc/PID1/root, TCP from
# inside the booted system's network namespace (setns on this thread only
# while the socket is created; the socket stays in that namespace).

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


class NetNs:
    def __init__(self, pid):
        self.target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)

    def socket(self, family):
        if _libc.setns(self.target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into the booted system's network")
        try:
            return socket.socket(family, socket.SOCK_STREAM)
        finally:
            if _libc.setns(self.home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")


class Client:
    """One connection speaking the line protocol, every read bounded."""

    def __init__(self, sock, addr, timeout=10):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.sock.connect(addr)
        self.buf = b""

    def lines(self, n):
        while self.buf.count(b"\n") < n:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Failure(f"connection closed before {n} answer lines: {self.buf!r}")
            self.buf += chunk
        out = []
        for _ in range(n):
            line, self.buf = self.buf.split(b"\n", 1)
            out.append(line.decode())
        return out

    def ask(self, request, n=1):
        self.sock.sendall(request.encode() + b"\n")
        got = self.lines(n)
        return got[0] if n == 1 else got

    def stats(self):
        lines = self.ask("q", 19)
        return dict(line.split(": ", 1) for line in lines)

    def close(self):
        self.sock.close()


class Machine:
    """A booted systemd on an overlay of /, torn down by signalling PID 1."""

    def __init__(self, deb):
        self.work = tempfile.mkdtemp(prefix=f"glockd-boot.{os.getpid()}.")
        os.chmod(self.work, 0o755)
        self.cg = os.path.join(cgroup2_mount(), f"glockd-boot.{os.getpid()}")
        self.deb = deb
        self.upid = None
        self.pid1 = None
        self.proc = None
        self.netns = None

    def boot(self):
        os.mkdir(self.cg)
        root = os.path.join(self.work, "root")
        ovl = os.path.join(self.work, "ovl")
        os.makedirs(root)
        os.makedirs(ovl)
        debname = os.path.basename(self.deb)
        inner = os.path.join(self.work, "inner.sh")
        with open(inner, "w") as f:
            f.write(f"""set -e
W={shlex.quote(self.work)}; R={shlex.quote(root)}
mount --make-rprivate /
mount -t tmpfs -o mode=755 ovl "$W/ovl"; mkdir -p "$W/ovl/u" "$W/ovl/w"
mount -t overlay overlay -o "lowerdir=/,upperdir=$W/ovl/u,workdir=$W/ovl/w" "$R"
mount -t proc proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"; mount -o remount,bind,ro "$R/proc/sys"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$R/sys/fs/cgroup"
mount --rbind /dev "$R/dev"; : > "$W/console.log"; mount --bind "$W/console.log" "$R/dev/console"
mount -t tmpfs -o mode=755 tmpfs "$R/run"; mount -t tmpfs -o mode=1777 tmpfs "$R/tmp"
# The .deb where the booted system sees it (the host's /tmp is hidden there).
mkdir -p "$R/var/tmp/glockd-test"; cp {shlex.quote(self.deb)} "$R/var/tmp/glockd-test/"{debname}
# The image's policy-rc.d (exit 101) would keep dpkg from starting units:
# removed in the overlay only.
rm -f "$R/usr/sbin/policy-rc.d"
# No timer may start apt or dpkg behind the test's back (nor apt's hook start
# PackageKit), and the journal is the booted system's alone (volatile, in its
# /run): no host history, no host kernel messages.
for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer man-db.timer \\
         e2scrub_all.timer fstrim.timer packagekit.service; do
  ln -sf /dev/null "$R/etc/systemd/system/$u"; done
rm -rf "$R/var/log/journal"
# man-db's trigger would rebuild the man index on every dpkg run (seconds).
rm -f "$R/var/lib/man-db/auto-update"
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\\nReadKMsg=no\\n' > "$R/etc/systemd/journald.conf.d/glockd-test.conf"
ip link set lo up 2>/dev/null || true
cd "$R"; mkdir -p .oldroot; pivot_root . .oldroot; umount -l /.oldroot
exec setpriv --bounding-set=-sys_module env -i container=glockd-test \\
     /lib/systemd/systemd --unit=basic.target
""")
        cg = self.cg

        def join_cgroup():
            with open(os.path.join(cg, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))

        self.bootlog = open(os.path.join(self.work, "boot.log"), "w+")
        # Own session: meson's SIGTERM to the test's process group must not
        # reach systemd (for PID 1 it means "re-execute").
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount", "--uts", "--ipc", "--cgroup", "--net",
             "bash", inner], stdout=self.bootlog, stderr=subprocess.STDOUT,
            preexec_fn=join_cgroup, start_new_session=True)
        self.upid = self.proc.pid
        for _ in range(100):
            try:
                kids = open(f"/proc/{self.upid}/task/{self.upid}/children").read().split()
            except OSError:
                kids = []
            if kids:
                self.pid1 = int(kids[0])
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if self.pid1 is None:
            raise Failure(f"unshare did not start PID 1: {self.boot_output()}")
        log(f"unshare pid {self.upid}, systemd (host) pid {self.pid1}")
        state = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = self.run(["systemctl", "is-system-running"], check=False, timeout=10).stdout
            state = state.strip()
            if state in ("running", "degraded"):
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        if state not in ("running", "degraded"):
            raise Failure(f"systemd did not finish booting ({state!r}): {self.boot_output()}")
        if state == "degraded":
            failed = self.run(["systemctl", "--failed", "--no-legend", "--plain"], check=False)
            log(f"booted (degraded; not glockd's units: {failed.stdout.strip()!r})")
        else:
            log("booted")
        self.netns = NetNs(self.pid1)

    def boot_output(self):
        self.bootlog.seek(0)
        return self.bootlog.read()[-3000:]

    def run(self, cmd, check=True, timeout=60, stdin=None):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
               "DEBIAN_FRONTEND": "noninteractive", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
        full = ["nsenter", "-t", str(self.pid1), "-m", "-p", "-u", "-i", "-n", "-r", "-w",
                "--"] + cmd
        try:
            r = subprocess.run(full, capture_output=True, text=True, timeout=timeout, env=env,
                               input=stdin)
        except subprocess.TimeoutExpired:
            raise Failure(f"timed out after {timeout}s: {' '.join(cmd)}")
        if check and r.returncode != 0:
            raise Failure(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
        return r

    def show(self, unit, prop):
        return self.run(["systemctl", "show", "-P", prop, unit]).stdout.strip()

    def path(self, inside):
        return f"/proc/{self.pid1}/root{inside}"

    def unix_client(self):
        return Client(socket.socket(socket.AF_UNIX), self.path(UNIX_PATH))

    def tcp_client(self, host, port):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return Client(self.netns.socket(family), (host, port))

    def processes(self, comm):
        """Host pids of processes named `comm` inside the booted system."""
        ns = os.readlink(f"/proc/{self.pid1}/ns/pid")
        found = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                if (open(f"/proc/{p}/comm").read().strip() == comm
                        and os.readlink(f"/proc/{p}/ns/pid") == ns):
                    found.append(int(p))
            except OSError:
                pass
        return found

    def teardown(self, fast=False):
        """SIGRTMIN+4 (poweroff) to PID 1, then wait; its exit ends the pid
        namespace, and the mount namespace and overlay vanish with it. fast
        (meson's timeout, SIGKILL follows in 0.5 s): SIGKILL to PID 1."""
        if self.pid1:
            try:
                os.kill(self.pid1, signal.SIGKILL if fast else signal.SIGRTMIN + 4)
            except ProcessLookupError:
                pass
        if self.proc:
            try:
                self.proc.wait(timeout=0.2 if fast else 15)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.pid1, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(timeout=0.1 if fast else 5)
                except subprocess.TimeoutExpired:
                    pass
        shutil.rmtree(self.work, ignore_errors=True)
        remove_cgroup(self.cg, 0.1 if fast else 5)


def remove_cgroup(path, patience):
    """rmdir a cgroup tree once its processes are gone (reaping takes a moment)."""
    deadline = time.monotonic() + patience
    while os.path.isdir(path):
        for top, _, _ in os.walk(path, topdown=False):
            try:
                os.rmdir(top)
            except OSError:
                pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)


def remove_leftovers():
    """What an earlier run killed by SIGKILL left: its empty cgroup and its
    small work directory (the overlay itself lived in its mount namespace)."""
    def dead(name):
        m = re.match(r"glockd-boot\.(\d+)", name)
        return m and not os.path.exists(f"/proc/{m.group(1)}")
    cg = cgroup2_mount()
    for name in os.listdir(cg):
        if dead(name):
            remove_cgroup(os.path.join(cg, name), 0)
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        if dead(name):
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)


def wait_for(what, fn, timeout=10, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise Failure(f"timed out waiting for {what} (last: {last!r})")


def listening_tcp(pid):
    """host:port of listening TCP sockets in PID's network namespace."""
    out = set()
    for name, v6 in (("tcp", False), ("tcp6", True)):
        try:
            lines = open(f"/proc/{pid}/net/{name}").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            addr, port = fields[1].split(":")
            raw = bytes.fromhex(addr)
            if v6:
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                host = "[" + socket.inet_ntop(socket.AF_INET6, raw) + "]"
            else:
                host = socket.inet_ntop(socket.AF_INET, raw[::-1])
            out.add(f"{host}:{int(port, 16)}")
    return out


def http_exchange(m, host, port, request):
    c = m.tcp_client(host, port)
    c.sock.sendall(request.encode())
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = c.sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, OSError):
        pass
    c.close()
    return data.decode("latin-1")


def test(m, debname):
    # ---- Install with apt, as a user would.
    r = m.run(["apt-get", "install", "-y", "--no-install-recommends",
               f"/var/tmp/glockd-test/{debname}"], check=False, timeout=120)
    if r.returncode != 0:
        raise Failure(f"apt-get install failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    status = m.run(["dpkg-query", "-W", "-f=${Status}", "glockd"]).stdout
    check(status == "install ok installed", f"dpkg status of glockd is {status!r}")

    # ---- The socket unit is enabled and listening; the daemon is not running yet.
    check(m.run(["systemctl", "is-enabled", "glockd.socket"], check=False).stdout.strip()
          == "enabled", "glockd.socket is enabled")
    for u in SOCKET_UNITS:
        check(m.show(u, "ActiveState") == "active", f"{u} is active")
    check(m.show("glockd.service", "ActiveState") == "inactive",
          "glockd.service is not started by the install (it starts on demand)")
    st = os.stat(m.path(UNIX_PATH))
    check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666,
          f"{UNIX_PATH} is a socket with mode 0666 ({oct(st.st_mode)})")
    check(os.path.realpath(m.path("/var/run")) == os.path.realpath(m.path("/run")) or
          os.stat(m.path("/var/run/glockd/socket")).st_ino == st.st_ino,
          "/var/run/glockd/socket is the same socket")
    want = {"127.0.0.1:9999", "[::1]:9999", "127.0.0.1:9998", "[::1]:9998"}
    have = listening_tcp(m.pid1)
    check(want <= have and not any(h.startswith(("0.0.0.0:", "[::]:")) for h in have),
          f"TCP 9999 and 9998 listen on loopback only ({sorted(have)})")

    # ---- The first connection starts glockd.service; locks work.
    a = m.unix_client()
    check(a.ask("g pkgtest") == "1 Lock Get Success: pkgtest",
          "first connection to /run/glockd/socket is served (g pkgtest)")
    check(m.show("glockd.service", "ActiveState") == "active",
          "the first connection started glockd.service")
    main_pid = m.show("glockd.service", "MainPID")
    proc_status = m.run(["cat", f"/proc/{main_pid}/status"]).stdout
    uid = int(re.search(r"^Uid:\s+(\d+)", proc_status, re.M).group(1))
    check(uid != 0, f"glockd runs unprivileged (uid {uid}, DynamicUser)")
    check(re.search(r"^NoNewPrivs:\s+1", proc_status, re.M) is not None, "NoNewPrivs is set")
    check(re.search(r"^Seccomp:\s+2", proc_status, re.M) is not None,
          "a seccomp filter is on (SystemCallFilter) and io_uring still works")
    b = m.tcp_client("127.0.0.1", 9999)
    check(b.ask("g pkgtest") == "0 Lock Get Failure: pkgtest",
          "a TCP client cannot take the lock the unix client holds")
    b6 = m.tcp_client("::1", 9999)
    check(b6.ask("i pkgtest") == "1 Lock Is Locked: pkgtest", "TCP on [::1]:9999 is served")
    b6.close()
    s = b.stats()
    check(s["locks"] == "1" and s["orphans"] == "0", f"q: locks 1, orphans 0 ({s})")
    a.close()
    s = wait_for("the lock to be orphaned",
                 lambda: (lambda s: s if s["orphans"] == "1" and s["locks"] == "0" else None)(
                     b.stats()))
    check(True, f"closing the holder orphans its lock (locks {s['locks']}, "
                f"orphans {s['orphans']})")
    check(b.ask("g pkgtest") == "1 Lock Get Success: pkgtest",
          "the orphaned lock can be taken again")

    # ---- glock, as an ordinary user, finds the packaged socket by itself (no
    # --server, no GLOCKD_SERVER) and runs a command under a lock; a second
    # glock exec of the same lock meanwhile is refused with 75.
    script = ("id -u; glock locks --json; glock exec glocktest -- true; "
              "echo second=$?; exit 7")
    r = m.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
               "glock", "exec", "--name", "pkgtest-glock", "glocktest", "--",
               "sh", "-c", script], check=False, timeout=30)
    out = r.stdout.splitlines()
    detail = f"exit {r.returncode}\n{r.stdout}{r.stderr}"
    check(r.returncode == 7, "glock exec exits with the command's status (7)", detail)
    uid = out[0] if out else "?"
    check(uid.isdigit() and uid != "0", f"glock ran as a non-root user (uid {uid})", detail)
    try:
        listed = json.loads(out[1])
    except (IndexError, ValueError):
        listed = {}
    check(listed.get("server") == f"unix:{UNIX_PATH}" and
          {"lock": "glocktest", "type": "exclusive", "holder": "pkgtest-glock"}.items()
          <= next((x for x in listed.get("locks", []) if x.get("lock") == "glocktest"),
                  {}).items(),
          "under glock exec, glock locks (default server: the packaged socket) shows "
          "glocktest held by pkgtest-glock", detail)
    check("second=75" in out and "glock: glocktest is held by another client" in r.stderr,
          "a second glock exec of the held lock exits 75", detail)
    r = m.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
               "glock", "inspect", "--json", "glocktest"], check=False, timeout=30)
    check(r.returncode == 0 and '"exclusive":{"locked":false' in r.stdout,
          "the lock is released when the command ends", r.stdout + r.stderr)

    # ---- The websocket/HTTP socket reaches the daemon; cross-origin upgrades
    # are refused by the packaged /etc/default/glockd.
    up = ("GET / HTTP/1.1\r\nHost: 127.0.0.1:9998\r\nUpgrade: websocket\r\n"
          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
          "Sec-WebSocket-Version: 13\r\n")
    cross = http_exchange(m, "127.0.0.1", 9998, up + "Origin: http://evil.example\r\n\r\n")
    check(cross.startswith("HTTP/1.1 403"),
          f"a cross-origin websocket upgrade is refused ({cross.splitlines()[:1]!r})")
    plain = http_exchange(m, "::1", 9998, up + "\r\n")
    check(plain.startswith("HTTP/1.1 101"),
          f"an upgrade without Origin (not a browser) is accepted ({plain.splitlines()[:1]!r})")

    # ---- Restart keeps the sockets; a client connecting during it is served.
    # A runtime drop-in makes the restart take 1 s so the test can connect
    # while no glockd process runs (deterministically, not by luck). The
    # restart also applies a changed setting from /etc/default/glockd.
    check(b.ask("d pkgtest") == "pkgtest: 127.0.0.1:" + str(b.sock.getsockname()[1]),
          "dump is on by default (d answers)")
    defaults = m.path("/etc/default/glockd")
    text = open(defaults).read()
    check(re.search(r"^GLOCKD_DUMP=true$", text, re.M) is not None,
          "/etc/default/glockd sets GLOCKD_DUMP=true")
    with open(defaults, "w") as f:
        f.write(re.sub(r"^GLOCKD_DUMP=true$", "GLOCKD_DUMP=false", text, flags=re.M))
    before = {u: m.show(u, "ActiveEnterTimestampMonotonic") for u in SOCKET_UNITS}
    ino = os.stat(m.path(UNIX_PATH)).st_ino
    dropin = m.path("/run/systemd/system/glockd.service.d")
    os.makedirs(dropin, exist_ok=True)
    with open(os.path.join(dropin, "50-test-slow-start.conf"), "w") as f:
        f.write("[Service]\nExecStartPre=/bin/sleep 1\n")
    m.run(["systemctl", "daemon-reload"])
    m.run(["systemctl", "restart", "--no-block", "glockd.service"])
    wait_for("glockd.service to be in its restart (start-pre)",
             lambda: m.show("glockd.service", "SubState") == "start-pre", timeout=10,
             interval=0.01)
    check(not m.processes("glockd"), "mid-restart: the old glockd has exited, no new one yet")
    t = time.monotonic()
    c = m.unix_client()
    c.sock.sendall(b"g during-restart\n")
    d = m.tcp_client("127.0.0.1", 9999)
    d.sock.sendall(b"g during-restart-tcp\n")
    got = c.lines(1)
    check(got == ["1 Lock Get Success: during-restart"],
          f"unix client that connected mid-restart is served {got} "
          f"({time.monotonic() - t:.2f}s later)")
    got = d.lines(1)
    check(got == ["1 Lock Get Success: during-restart-tcp"],
          f"TCP client that connected mid-restart is served {got}")
    got = c.ask("d")
    check(got == "0 disabled", f"GLOCKD_DUMP=false in /etc/default/glockd took effect ({got!r})")
    new_pid = m.show("glockd.service", "MainPID")
    check(new_pid not in ("0", main_pid), f"a new glockd runs (pid {main_pid} -> {new_pid})")
    after = {u: m.show(u, "ActiveEnterTimestampMonotonic") for u in SOCKET_UNITS}
    check(after == before and os.stat(m.path(UNIX_PATH)).st_ino == ino,
          "the socket units were not restarted and the unix socket is the same inode")
    try:
        got = b.sock.recv(100)
    except OSError:
        got = b""
    check(got == b"", "the client connected before the restart was disconnected")
    b.close()
    d.close()
    os.unlink(os.path.join(dropin, "50-test-slow-start.conf"))
    m.run(["systemctl", "daemon-reload"])

    # ---- An upgrade (reinstalling the .deb) restarts the running daemon
    # with the new binary and keeps the sockets and the admin's settings.
    before = {u: m.show(u, "ActiveEnterTimestampMonotonic") for u in SOCKET_UNITS}
    r = m.run(["dpkg", "-i", "--force-confold", f"/var/tmp/glockd-test/{debname}"],
              check=False, timeout=120)
    check(r.returncode == 0, "upgrade (dpkg -i of the same .deb) succeeds",
          (r.stdout + r.stderr)[-2000:])
    upgraded_pid = m.show("glockd.service", "MainPID")
    check(upgraded_pid not in ("0", new_pid),
          f"the upgrade restarted the running glockd (pid {new_pid} -> {upgraded_pid})")
    after = {u: m.show(u, "ActiveEnterTimestampMonotonic") for u in SOCKET_UNITS}
    check(after == before and os.stat(m.path(UNIX_PATH)).st_ino == ino,
          "the upgrade left the socket units alone")
    u = m.unix_client()
    got = u.ask("d")
    check(got == "0 disabled", f"the upgrade kept /etc/default/glockd as changed ({got!r})")
    u.close()

    # ---- Stop cleanly.
    r = m.run(["systemctl", "stop", "glockd.socket", "glockd.service"], check=False, timeout=60)
    check(r.returncode == 0, "systemctl stop glockd.socket glockd.service succeeds", r.stderr)
    try:
        leftover = c.sock.recv(100)
    except OSError:
        leftover = b""
    check(leftover == b"", "connected clients are closed by the stop")
    c.close()
    for u in SOCKET_UNITS + ["glockd.service"]:
        check(m.show(u, "ActiveState") == "inactive", f"{u} is inactive (not failed)")
    check(m.show("glockd.service", "ExecMainStatus") == "0", "glockd exited 0")
    check(not os.path.exists(m.path(UNIX_PATH)), f"{UNIX_PATH} is removed")
    check(not m.processes("glockd"), "no glockd process runs")

    # ---- `systemctl start glockd` brings the sockets back too.
    m.run(["systemctl", "start", "glockd"], timeout=60)
    for u in SOCKET_UNITS + ["glockd.service"]:
        check(m.show(u, "ActiveState") == "active", f"after systemctl start glockd: {u} active")
    e = m.unix_client()
    check(e.ask("g before-remove") == "1 Lock Get Success: before-remove",
          "served after systemctl start glockd")

    # ---- apt remove leaves nothing running.
    r = m.run(["apt-get", "remove", "-y", "glockd"], check=False, timeout=120)
    check(r.returncode == 0, "apt-get remove glockd succeeds", (r.stdout + r.stderr)[-2000:])
    check(not m.processes("glockd"), "after apt remove no glockd process runs")
    for u in SOCKET_UNITS + ["glockd.service"]:
        state = m.show(u, "ActiveState")
        check(state in ("inactive", ""), f"after apt remove {u} is {state or 'gone'}")
    check(not os.path.exists(m.path(UNIX_PATH)), f"after apt remove {UNIX_PATH} is gone")
    try:
        leftover = e.sock.recv(100)
    except OSError:
        leftover = b""
    check(leftover == b"", "the connected client was closed by the removal")
    e.close()
    status = m.run(["dpkg-query", "-W", "-f=${Status}", "glockd"]).stdout
    check(status == "deinstall ok config-files", f"dpkg status after remove: {status!r}")
    r = m.run(["dpkg", "--purge", "glockd"], check=False, timeout=120)
    check(r.returncode == 0, "dpkg --purge glockd succeeds", (r.stdout + r.stderr)[-2000:])
    gone = [p for p in ("/etc/default/glockd",
                        "/etc/systemd/system/sockets.target.wants/glockd.socket")
            if os.path.lexists(m.path(p))]
    check(not gone, f"purge leaves neither the settings nor the enablement link {gone}")

    # ---- The journal has the daemon's own lines (no timestamps of its own).
    def journal():
        out = m.run(["journalctl", "--no-pager", "-o", "cat", "_SYSTEMD_UNIT=glockd.service"],
                    check=False).stdout
        return out if "info: stopped" in out else None
    lines = wait_for("the daemon's lines in the journal", journal, timeout=10, interval=0.2)
    for want_line in ("info: socket activation: 5 sockets from systemd",
                      "info: ready: glockd",
                      "info: received Terminated: shutting down",
                      "info: stopped"):
        check(want_line in lines, f"journal has {want_line!r}")
    check(lines.count("info: ready: glockd") >= 3,
          "journal shows each of the 3 starts (activation, restart, systemctl start)")


def main():
    preconditions()
    try:
        deb = pkgtest.ensure_deb(timeout=DEB_WAIT_S)
    except (RuntimeError, TimeoutError) as e:
        print(f"FAIL: no .deb to install: {e}", flush=True)
        sys.exit(1)
    remove_leftovers()
    m = Machine(deb)

    def on_term(signum, frame):  # meson's timeout: SIGKILL follows in 0.5 s
        m.teardown(fast=True)
        os._exit(1)

    def on_alarm(signum, frame):
        raise Failure(f"booting and testing took over {BOOT_S}s")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(BOOT_S)
    ok = False
    try:
        m.boot()
        test(m, os.path.basename(deb))
        ok = True
    except (Failure, OSError) as e:
        log(f"FAIL: {e}")
        if m.pid1:
            try:
                r = m.run(["journalctl", "--no-pager", "-n", "80", "-o", "short-monotonic"],
                          check=False, timeout=20)
                print("---- journal (last 80 lines) ----\n" + r.stdout + r.stderr, flush=True)
            except Failure as e2:
                print(f"(no journal: {e2})")
    finally:
        signal.alarm(0)
        m.teardown()
        log("torn down")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
