#!/usr/bin/python3
"""Builds the .deb (scripts/build-deb, once per run: see pkgtest.ensure_deb)
and checks it without installing it: its contents and maintainer scripts,
lintian (no errors, no warnings that are not overridden with a reason), the
units as systemd reads them, and the service's sandbox score
(`systemd-analyze security --offline=true`, 1.5 or lower).

Skips (77) where the Debian tools are missing and cannot be installed (not
root), except on CI (env CI set), where it must run.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pkgtest  # noqa: E402
from pkgtest import check, failures, log  # noqa: E402

MAX_EXPOSURE = 1.5
UNITS = ["glockd.service", "glockd.socket", "glockd-tcp.socket", "glockd-ws.socket"]


def run(cmd, timeout=120):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def preconditions():
    reasons = []
    tools = ["dpkg-buildpackage", "dh", "lintian", "systemd-analyze"]
    missing = [t for t in tools if not shutil.which(t)]
    if missing and os.geteuid() != 0:
        reasons.append(f"{', '.join(missing)} missing and not root to install them")
    elif "systemd-analyze" in missing or "lintian" in missing:
        reasons.append(f"{', '.join(missing)} missing (scripts/deps.sh test_deps installs them)")
    pkgtest.skip_or_fail(reasons, "CI is set" if pkgtest.on_ci() else None)


def main():
    preconditions()
    try:
        deb = pkgtest.ensure_deb(timeout=330)
    except (RuntimeError, TimeoutError) as e:
        print(f"FAIL: no .deb to check: {e}", flush=True)
        sys.exit(1)
    meson_version = re.search(r"version\s*:\s*'([^']+)'",
                              open(os.path.join(pkgtest.SOURCE_ROOT, "meson.build")).read())
    with tempfile.TemporaryDirectory(prefix="glockd-deb-check.") as tmp:
        # ---- Contents.
        fields = run(["dpkg-deb", "-f", deb, "Package", "Version", "Architecture"]).stdout
        log(fields.replace("\n", " "))
        version = re.search(r"^Version: (\S+)", fields, re.M).group(1)
        check(meson_version and version.split("-")[0] == meson_version.group(1),
              f"package version {version} matches meson.build's "
              f"{meson_version.group(1) if meson_version else '?'}")
        root = os.path.join(tmp, "root")
        ctrl = os.path.join(tmp, "DEBIAN")
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True, timeout=60)
        subprocess.run(["dpkg-deb", "-e", deb, ctrl], check=True, timeout=60)
        exe = os.path.join(root, "usr/sbin/glockd")
        check(os.access(exe, os.X_OK), "the daemon is /usr/sbin/glockd")
        r = run([exe, "--version"], timeout=10)
        check(r.returncode == 0 and r.stdout.strip() == f"glockd {version.split('-')[0]}",
              f"/usr/sbin/glockd --version says {r.stdout.strip()!r}")
        for u in UNITS:
            check(os.path.isfile(os.path.join(root, "lib/systemd/system", u)),
                  f"{u} is in /lib/systemd/system")
        check(os.path.isfile(os.path.join(root, "usr/share/man/man8/glockd.8.gz")),
              "glockd(8) is installed")
        glock = os.path.join(root, "usr/bin/glock")
        check(os.access(glock, os.X_OK), "the glock command is /usr/bin/glock")
        r = run([glock, "--version"], timeout=10)
        check(r.returncode == 0 and r.stdout.strip() == f"glock {version.split('-')[0]}",
              f"/usr/bin/glock --version says {r.stdout.strip()!r}")
        check(os.path.isfile(os.path.join(root, "usr/share/man/man1/glock.1.gz")),
              "glock(1) is installed")
        # glock(1) and glockd(8) name it by this path: not compressed.
        protocol = os.path.join(root, "usr/share/doc/glockd/PROTOCOL.md")
        with open(os.path.join(pkgtest.SOURCE_ROOT, "docs/PROTOCOL.md"), "rb") as f:
            want = f.read()
        check(os.path.isfile(protocol) and open(protocol, "rb").read() == want,
              "docs/PROTOCOL.md is /usr/share/doc/glockd/PROTOCOL.md")
        conffiles = open(os.path.join(ctrl, "conffiles")).read().split()
        check(conffiles == ["/etc/default/glockd"], f"conffiles: {conffiles}")
        postinst = open(os.path.join(ctrl, "postinst")).read()
        prerm = open(os.path.join(ctrl, "prerm")).read()
        check("deb-systemd-helper enable 'glockd.socket'" in postinst,
              "postinst enables glockd.socket")
        check("deb-systemd-invoke start 'glockd.socket'" in postinst,
              "postinst starts glockd.socket")
        check(not re.search(r"deb-systemd-invoke (start|restart) .*glockd\.service", postinst),
              "postinst does not start glockd.service (the first connection does)")
        check("deb-systemd-invoke try-restart 'glockd.service'" in postinst,
              "an upgrade restarts glockd.service only if it was running")
        check("deb-systemd-invoke stop 'glockd.socket'" in prerm,
              "prerm stops glockd.socket (and with it the service) on removal")

        # ---- The units as systemd parses them: no unknown or invalid keys.
        unit_paths = [os.path.join(root, "lib/systemd/system", u) for u in UNITS]
        r = run(["systemd-analyze", "verify", "--man=no"] + unit_paths, timeout=60)
        noise = [line for line in (r.stdout + r.stderr).splitlines()
                 if line.strip() and "/usr/sbin/glockd is not executable" not in line]
        check(not noise, "systemd-analyze verify finds nothing wrong in the units",
              "\n".join(noise))

        # ---- /etc/default/glockd and the unit agree: every setting reaches
        # ExecStart, the unit's fallback defaults are the file's values, and
        # every flag the unit passes exists in this glockd.
        service = open(unit_paths[0]).read().replace("\\\n", " ")
        exec_start = re.search(r"^ExecStart=(.*)$", service, re.M).group(1)
        unit_env = {}
        for line in re.findall(r"^Environment=(.*)$", service, re.M):
            for word in shlex.split(line):
                name, _, value = word.partition("=")
                unit_env[name] = value
        file_env = {}
        for line in open(os.path.join(root, "etc/default/glockd")):
            if re.match(r"^[A-Z_]+=", line):
                name, _, value = shlex.split(line)[0].partition("=")
                file_env[name] = value
        unused = [n for n in file_env if f"${{{n}}}" not in exec_start
                  and not re.search(rf"\${n}\b", exec_start)]
        check(not unused, f"every setting in /etc/default/glockd reaches ExecStart {unused}")
        differ = {n: (v, file_env.get(n)) for n, v in unit_env.items() if file_env.get(n) != v}
        check(not differ, "the unit's fallback defaults equal /etc/default/glockd's", str(differ))
        help_text = run([exe, "--help"], timeout=10).stdout
        flags = set(re.findall(r"(--[a-z-]+)=", exec_start + " " + unit_env.get(
            "GLOCKD_WS_ORIGINS", "")))
        unknown = [f for f in flags if not re.search(rf"{re.escape(f)}(?![a-z-])", help_text)]
        check(flags and not unknown, f"glockd knows every flag the unit passes {unknown}")

        # ---- Sandbox score of the service.
        r = run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                 unit_paths[0]], timeout=60)
        m = re.search(r"Overall exposure level for glockd\.service: ([0-9.]+)", r.stdout)
        score = float(m.group(1)) if m else None
        check(score is not None and score <= MAX_EXPOSURE,
              f"systemd-analyze security --offline=true: exposure {score} "
              f"(at most {MAX_EXPOSURE})", r.stdout[-3000:] + r.stderr)
        if score is not None and score > 0:
            weak = [line for line in r.stdout.splitlines() if line.startswith("✗")]
            log("not fully hardened (each explained in README.md):\n  " + "\n  ".join(weak))

        # ---- lintian.
        # Judged by its lines: with --show-overrides lintian also fails on
        # overridden tags. Overrides (O:) carry their reason (N: lines above).
        r = run(["lintian", "--tag-display-limit", "0", "--display-info", "--show-overrides",
                 deb], timeout=60)
        out = r.stdout.rstrip()
        log("lintian:\n" + (out or "(nothing to report)"))
        errors = [line for line in out.splitlines() if line.startswith("E:")]
        warnings = [line for line in out.splitlines() if line.startswith("W:")]
        check(r.returncode == 0 and not errors and not warnings,
              f"lintian: {len(errors)} errors, {len(warnings)} warnings (exit {r.returncode})",
              r.stderr[-2000:])

    if failures:
        print(f"{len(failures)} checks failed: {failures}")
        sys.exit(1)


if __name__ == "__main__":
    main()
