#!/usr/bin/python3
"""The .deb's TLS setup under a real systemd, booted as in
test_systemd_boot.py (same machinery: systemd as PID 1 in private namespaces
on a throw-away overlay of /, the package installed with apt).

Checks what an admin who turns TLS on relies on: the package made the group
glockd-tls, /etc/glockd root:glockd-tls 0750, the unit gives the dynamic user that
group; with a throw-away PKI (tests/tlscerts.py) installed root:glockd-tls 0640
and GLOCKD_TLS set in /etc/default/glockd, a user outside the group cannot
read the files but the sandboxed service can: the first TLS connection
(client certificate, from inside the booted system's network) starts it
and takes a lock, plain TCP gets no answer, https /metrics works
(--ws-ssl). Then the certificate is renewed the documented way (install
with the group, rename, `systemctl reload glockd`): the journal says
"reloaded TLS certificates", new connections (Python's ssl and
`openssl s_client` run inside) see the new certificate, while the same
process still runs and the lock taken before still belongs to the
connection made before, which still answers. A renewal with a key that does
not match keeps the old certificate and logs the failure. An upgrade keeps
/etc/glockd's group and mode and the daemon it restarts serves TLS again.

Needs root and overlayfs; elsewhere it skips (77) saying why, except on CI
(env CI set) or as root with overlayfs, where it must run.
"""
import os
import re
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pkgtest  # noqa: E402
import test_systemd_boot as boot  # noqa: E402
import tlscerts  # noqa: E402
from pkgtest import log  # noqa: E402
from test_systemd_boot import Client, Failure, check, wait_for  # noqa: E402

BOOT_S = 120  # booting and testing, after the .deb exists
PKI_INSIDE = "/var/tmp/glockd-test/pki"
CONF = "/etc/glockd"
TLS_FLAGS = (f"--ssl --ssl-cert={CONF}/server.pem --ssl-key={CONF}/server.key "
             f"--ssl-ca={CONF}/ca.pem --ws-ssl")


class TlsClient(Client):
    """A line-protocol client over TLS with a client certificate; the TCP
    socket is made in the booted system's network namespace."""

    def __init__(self, m, ctx, host="127.0.0.1", port=9999, timeout=10):
        raw = m.netns.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        raw.settimeout(timeout)
        raw.connect((host, port))
        self.sock = ctx.wrap_socket(raw, server_hostname=host)
        self.buf = b""

    def server_cn(self):
        subject = dict(x[0] for x in self.sock.getpeercert()["subject"])
        return subject.get("commonName")


def client_context(pki, client="client"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki["ca"])
    if client:
        ctx.load_cert_chain(pki[client], pki[client + "_key"])
    return ctx


def https_get(m, pki, path):
    """GET over https on the websocket/HTTP port (--ws-ssl, no client
    certificate asked for there): (status line, body)."""
    raw = m.netns.socket(socket.AF_INET)
    raw.settimeout(10)
    raw.connect(("127.0.0.1", 9998))
    s = client_context(pki, client=None).wrap_socket(raw, server_hostname="127.0.0.1")
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:9998\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise Failure(f"https {path}: closed before the response head: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"^content-length: *(\d+)", head, re.M | re.I)
    if not length:
        raise Failure(f"https {path}: no Content-Length: {head!r}")
    while len(body) < int(length.group(1)):
        chunk = s.recv(65536)
        if not chunk:
            raise Failure(f"https {path}: closed mid-body")
        body += chunk
    s.close()
    return head.decode("latin-1").split("\r\n")[0], body.decode()


def metric(body, name):
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


def s_client_subject(m):
    """The server certificate's subject as `openssl s_client`, run inside the
    booted system with the client certificate, sees it; and whether it
    verified it."""
    r = m.run(["openssl", "s_client", "-connect", "127.0.0.1:9999",
               "-cert", f"{PKI_INSIDE}/client.pem", "-key", f"{PKI_INSIDE}/client.key",
               "-CAfile", f"{PKI_INSIDE}/ca.pem", "-verify_return_error",
               "-verify_ip", "127.0.0.1"], check=False, timeout=30, stdin="")
    subject = re.search(r"^subject=(.*)$", r.stdout, re.M)
    verified = "Verify return code: 0 (ok)" in r.stdout
    return (subject.group(1).strip() if subject else None), verified, r.stdout + r.stderr


def journal(m):
    return m.run(["journalctl", "--no-pager", "-o", "cat", "_SYSTEMD_UNIT=glockd.service"],
                 check=False).stdout


def install_files(m, pairs):
    """The README's way to put a file in place: install it root:glockd-tls 0640
    under a temporary name, then rename it over the old one."""
    for src, dst in pairs:
        m.run(["install", "-m", "0640", "-o", "root", "-g", "glockd-tls", src, dst + ".new"])
    for _, dst in pairs:
        m.run(["mv", "-f", dst + ".new", dst])


def not_after(pem):
    r = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", pem],
                            capture_output=True, text=True, check=True, timeout=10)
    return ssl.cert_time_to_seconds(r.stdout.strip().split("=", 1)[1])


def test(m, debname, pki):
    # ---- Install; what the package prepared for TLS.
    r = m.run(["apt-get", "install", "-y", "--no-install-recommends",
               f"/var/tmp/glockd-test/{debname}"], check=False, timeout=120)
    if r.returncode != 0:
        raise Failure(f"apt-get install failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    group = m.run(["getent", "group", "glockd-tls"], check=False).stdout.strip()
    check(re.match(r"^glockd-tls:x:\d+:$", group) is not None,
          f"the package created the system group glockd-tls ({group!r})")
    gid = int(group.split(":")[2])
    check(gid < 1000, f"glockd-tls is a system group (gid {gid})")
    st = os.stat(m.path(CONF))
    check(stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and st.st_gid == gid
          and stat.S_IMODE(st.st_mode) == 0o750,
          f"{CONF} is root:glockd-tls 0750 (uid {st.st_uid} gid {st.st_gid} "
          f"mode {oct(stat.S_IMODE(st.st_mode))})")
    check(m.show("glockd.service", "SupplementaryGroups") == "glockd-tls",
          "glockd.service has SupplementaryGroups=glockd-tls")
    check(m.show("glockd.service", "ActiveState") == "inactive", "the daemon is not running yet")
    r = m.run(["systemctl", "try-reload-or-restart", "glockd"], check=False)
    check(r.returncode == 0 and m.show("glockd.service", "ActiveState") == "inactive",
          "the README's deploy-hook command (systemctl try-reload-or-restart glockd) "
          "succeeds and starts nothing while no client has started glockd",
          r.stdout + r.stderr)

    # ---- The PKI into /etc/glockd as the README says; TLS on.
    install_files(m, [(f"{PKI_INSIDE}/{n}", f"{CONF}/{n}")
                      for n in ("server.pem", "server.key", "ca.pem")])
    for n in ("server.pem", "server.key", "ca.pem"):
        st = os.stat(m.path(f"{CONF}/{n}"))
        check(st.st_uid == 0 and st.st_gid == gid and stat.S_IMODE(st.st_mode) == 0o640,
              f"{CONF}/{n} is root:glockd-tls 0640")
    defaults = m.path("/etc/default/glockd")
    text = open(defaults).read()
    check(re.search(r'^GLOCKD_TLS=""$', text, re.M) is not None,
          "/etc/default/glockd has GLOCKD_TLS=\"\" (TLS off by default)")
    with open(defaults, "w") as f:
        f.write(re.sub(r'^GLOCKD_TLS=""$', f'GLOCKD_TLS="{TLS_FLAGS}"', text, flags=re.M))

    # A user outside the group cannot read them: the group is what lets the
    # service in. (glockd run by hand as nobody; it exits at once.)
    r = m.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
               "/usr/sbin/glockd", "--port=19999", "--ws=19998"] + TLS_FLAGS.split(),
              check=False, timeout=30)
    check(r.returncode == 1 and re.search(
              rf"--ssl-(cert|key|ca) {CONF}/\S+: cannot read: Permission denied", r.stderr),
          "glockd run by a user outside the group glockd-tls exits 1 naming the flag, the file "
          "and 'Permission denied'", f"exit {r.returncode}\n{r.stdout}{r.stderr}")

    # ---- The first TLS connection starts the sandboxed daemon; a lock.
    ctx = client_context(pki)
    old = TlsClient(m, ctx)
    check(old.server_cn() == "glockd-test-server",
          f"TLS handshake with a client certificate; server certificate CN "
          f"{old.server_cn()!r}")
    check(old.ask("g tls-lock") == "1 Lock Get Success: tls-lock",
          "the first TLS connection started glockd.service and took tls-lock")
    main_pid = m.show("glockd.service", "MainPID")
    status = m.run(["cat", f"/proc/{main_pid}/status"]).stdout
    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
    groups = re.search(r"^Groups:(.*)$", status, re.M).group(1).split()
    check(uid != 0 and str(gid) in groups,
          f"the daemon runs as a dynamic user (uid {uid}) with the group glockd-tls "
          f"(groups {groups})")
    old_port = old.sock.getsockname()[1]
    u = m.unix_client()
    check(u.ask("d tls-lock") == f"tls-lock: 127.0.0.1:{old_port}",
          "d over the (plain) unix socket shows the TLS connection's ip:port as the holder")

    # Plain TCP on the TLS port gets no answer.
    p = m.tcp_client("127.0.0.1", 9999)
    p.sock.sendall(b"g plain\n")
    got = b""
    try:
        while True:
            chunk = p.sock.recv(4096)
            if not chunk:
                break
            got += chunk
    except (ConnectionResetError, socket.timeout) as e:
        got += f" <{type(e).__name__}>".encode()
    p.close()
    check(b"Lock" not in got and not got.startswith(b"0 ") and not got.startswith(b"1 "),
          f"a plain-TCP client on the TLS port gets no protocol answer ({got[:40]!r})")

    # https on the websocket/HTTP port (--ws-ssl).
    line, body = https_get(m, pki, "/metrics")
    check(line.startswith("HTTP/1.1 200"), f"GET /metrics over https: {line!r}")
    expiry = metric(body, "glockd_tls_certificate_expiry_timestamp_seconds")
    check(expiry == not_after(pki["server"]),
          f"glockd_tls_certificate_expiry_timestamp_seconds is server.pem's notAfter "
          f"({expiry} vs {not_after(pki['server'])})")
    tls_conns = metric(body, "glockd_tls_connections")
    check(tls_conns is not None and tls_conns >= 1, f"glockd_tls_connections {tls_conns}")

    # ---- Renewal: server2 installed the documented way, then reload.
    install_files(m, [(f"{PKI_INSIDE}/server2.pem", f"{CONF}/server.pem"),
                      (f"{PKI_INSIDE}/server2.key", f"{CONF}/server.key")])
    m.run(["systemctl", "reload", "glockd"])
    wait_for("'reloaded TLS certificates' in the daemon's journal",
             lambda: "reloaded TLS certificates" in journal(m), timeout=10, interval=0.1)
    reloaded = [x for x in journal(m).splitlines() if "reloaded TLS certificates" in x]
    check("glockd-test-server-2" in reloaded[0],
          f"the journal says 'reloaded TLS certificates', naming the new one: {reloaded[0]!r}")
    new = TlsClient(m, client_context(pki, "client2"))
    check(new.server_cn() == "glockd-test-server-2",
          f"a new connection gets the new certificate (CN {new.server_cn()!r})")
    subject, verified, out = s_client_subject(m)
    check(subject == "CN = glockd-test-server-2" and verified,
          f"openssl s_client inside the booted system sees {subject!r}, verified", out[-2000:])
    check(m.show("glockd.service", "MainPID") == main_pid
          and m.show("glockd.service", "NRestarts") == "0",
          "the reload did not restart glockd (same MainPID, no restarts)")
    check(new.ask("g tls-lock") == "0 Lock Get Failure: tls-lock",
          "the lock taken before the reload is still held: a new client cannot take it")
    check(u.ask("d tls-lock") == f"tls-lock: 127.0.0.1:{old_port}",
          "d shows it held by the connection made before the reload")
    check(old.ask("i tls-lock") == "1 Lock Is Locked: tls-lock",
          "the connection made before the reload still answers over TLS (old certificate)")
    line, body = https_get(m, pki, "/metrics")
    check(metric(body, "glockd_tls_reloads_total") == 1,
          f"glockd_tls_reloads_total is 1 ({metric(body, 'glockd_tls_reloads_total')})")
    check(metric(body, "glockd_tls_certificate_expiry_timestamp_seconds")
          == not_after(pki["server2"]),
          "the expiry metric follows the new certificate")

    # ---- A renewal gone wrong (key of another certificate): the old ones stay.
    install_files(m, [(f"{PKI_INSIDE}/server.key", f"{CONF}/server.key")])
    m.run(["systemctl", "reload", "glockd"])
    wait_for("'TLS reload failed' in the daemon's journal",
             lambda: "TLS reload failed" in journal(m), timeout=10, interval=0.1)
    failed = [x for x in journal(m).splitlines() if "TLS reload failed" in x]
    check("server.key" in failed[0] or "server.pem" in failed[0],
          f"the failure names the file: {failed[0]!r}")
    again = TlsClient(m, ctx)
    check(again.server_cn() == "glockd-test-server-2",
          "after the failed reload new connections still get the certificate loaded before")
    check(again.ask("i tls-lock") == "1 Lock Is Locked: tls-lock"
          and old.ask("i tls-lock") == "1 Lock Is Locked: tls-lock",
          "and every connection and lock stays")
    again.close()
    check(m.show("glockd.service", "ActiveState") == "active"
          and m.show("glockd.service", "MainPID") == main_pid,
          "glockd still runs, same process")
    install_files(m, [(f"{PKI_INSIDE}/server2.key", f"{CONF}/server.key")])

    # ---- An upgrade keeps /etc/glockd's group and mode and the files; the
    # daemon it restarts serves TLS with them.
    new.close()
    r = m.run(["dpkg", "-i", "--force-confold", f"/var/tmp/glockd-test/{debname}"],
              check=False, timeout=120)
    check(r.returncode == 0, "upgrade (dpkg -i of the same .deb) succeeds",
          (r.stdout + r.stderr)[-2000:])
    st = os.stat(m.path(CONF))
    check(st.st_uid == 0 and st.st_gid == gid and stat.S_IMODE(st.st_mode) == 0o750,
          f"after the upgrade {CONF} is still root:glockd-tls 0750")
    check(sorted(os.listdir(m.path(CONF))) == ["ca.pem", "server.key", "server.pem"],
          f"after the upgrade {CONF} holds the admin's files")
    check(m.show("glockd.service", "MainPID") not in ("0", main_pid),
          "the upgrade restarted the running daemon")
    after = TlsClient(m, ctx)
    check(after.server_cn() == "glockd-test-server-2"
          and after.ask("g tls-lock") == "1 Lock Get Success: tls-lock",
          "the restarted daemon serves TLS with the renewed certificate (the restart "
          "dropped the old connection's lock)")
    after.close()
    old.close()
    u.close()


def main():
    if not shutil.which("openssl"):
        pkgtest.skip_or_fail(["openssl is missing (scripts/deps.sh test_deps installs it)"],
                             "CI is set" if pkgtest.on_ci() else None)
    boot.preconditions()
    try:
        deb = pkgtest.ensure_deb(timeout=boot.DEB_WAIT_S)
    except (RuntimeError, TimeoutError) as e:
        print(f"FAIL: no .deb to install: {e}", flush=True)
        sys.exit(1)
    boot.remove_leftovers()
    pki_dir = tempfile.mkdtemp(prefix="glockd-pki.")
    pki = tlscerts.make_pki(pki_dir)
    log("made the throw-away PKI (tests/tlscerts.py)")
    m = boot.Machine(deb)

    def on_term(signum, frame):  # meson's timeout: SIGKILL follows in 0.5 s
        m.teardown(fast=True)
        shutil.rmtree(pki_dir, ignore_errors=True)
        os._exit(1)

    def on_alarm(signum, frame):
        raise Failure(f"booting and testing took over {BOOT_S}s")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(BOOT_S)
    ok = False
    try:
        m.boot()
        # The PKI where the booted system sees it (the host's /tmp is hidden).
        shutil.copytree(pki_dir, m.path(PKI_INSIDE))
        test(m, os.path.basename(deb), pki)
        ok = True
    except (Failure, OSError, ssl.SSLError) as e:
        log(f"FAIL: {type(e).__name__}: {e}")
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
        shutil.rmtree(pki_dir, ignore_errors=True)
        log("torn down")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
