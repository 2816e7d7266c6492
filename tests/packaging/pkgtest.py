"""Shared by the packaging tests: skipping, and building the .deb once.

The .deb is built by scripts/build-deb into the meson build directory
(GLOCKD_PKG_WORKDIR/deb). Tests that need it call ensure_deb(); the first
builds it under a lock while the others wait and then reuse it, so one test
run builds it at most once (none when the sources have not changed since the
last build).
"""
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

SKIP = 77  # meson: skipped

SOURCE_ROOT = os.environ.get(
    "GLOCKD_SOURCE_ROOT",
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
WORKDIR = os.environ.get("GLOCKD_PKG_WORKDIR", os.path.join(SOURCE_ROOT, "build", "packaging"))

_t0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - _t0:6.2f}s] {msg}", flush=True)


# Checks that go on after a failure; the test exits non-zero when any failed.
failures = []


def check(cond, what, detail=""):
    if cond:
        log(f"ok: {what}")
    else:
        log(f"FAIL: {what}" + (f"\n{detail}" if detail else ""))
        failures.append(what)


def on_ci():
    return bool(os.environ.get("CI"))


def skip_or_fail(reasons, must_run):
    """Exit 77 (skip) naming why this machine cannot run the test; where the
    test must run (CI, or root with overlayfs), exit 1 instead."""
    if not reasons:
        return
    why = "; ".join(reasons)
    if must_run:
        print(f"FAIL: this test must run here ({must_run}) but cannot: {why}", flush=True)
        sys.exit(1)
    print(f"SKIP: {why}", flush=True)
    sys.exit(SKIP)


def source_files():
    """The files scripts/build-deb copies (same selection), relative paths."""
    try:
        out = subprocess.run(
            ["git", "-C", SOURCE_ROOT, "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"], check=True, capture_output=True, timeout=30).stdout
        names = [n for n in out.decode("utf-8", "surrogateescape").split("\0") if n]
        return sorted(n for n in names if os.path.lexists(os.path.join(SOURCE_ROOT, n)))
    except (OSError, subprocess.SubprocessError):
        pass
    names = []
    for top, dirs, files in os.walk(SOURCE_ROOT):
        rel = os.path.relpath(top, SOURCE_ROOT)
        if rel == ".":
            dirs[:] = [d for d in dirs if d != ".git" and not d.startswith("build")
                       and d not in ("dist", "debian")]
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        names += [os.path.normpath(os.path.join(rel, f)) for f in files]
    return sorted(names)


def source_hash():
    h = hashlib.sha256()
    for name in source_files():
        path = os.path.join(SOURCE_ROOT, name)
        h.update(name.encode("utf-8", "surrogateescape") + b"\0")
        if os.path.islink(path):
            h.update(b"L" + os.readlink(path).encode("utf-8", "surrogateescape"))
        elif os.path.isfile(path):
            st = os.stat(path)
            h.update(b"F%o\0" % (st.st_mode & 0o111))
            with open(path, "rb") as f:
                h.update(f.read())
        h.update(b"\0")
    return h.hexdigest()


def run_key():
    """Names this test run: the `meson test` process that started us (its pid
    and start time), shared by every test of the run."""
    ppid = os.getppid()
    try:
        with open(f"/proc/{ppid}/stat") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        start = "?"
    return f"{ppid}:{start}"


def _debs(d):
    if not os.path.isdir(d):
        return []
    return sorted(f for f in os.listdir(d) if f.startswith("glockd_") and f.endswith(".deb"))


def kill_tree(proc):
    """SIGTERM to a child and every process under it (the compilers of a
    build), then SIGKILL to what is left."""
    def descendants(pid):
        out = []
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    for kid in f.read().split():
                        out += [int(kid)] + descendants(int(kid))
        except OSError:
            pass
        return out
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in [proc.pid] + descendants(proc.pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=3)
            break
        except subprocess.TimeoutExpired:
            pass


def ensure_deb(timeout):
    """Returns the path of glockd_*.deb built from the current sources
    (or GLOCKD_TEST_DEB, a .deb built elsewhere, when set).

    Reused when built earlier in this test run (even if files changed since:
    one build per run), or built from sources with the same content hash."""
    if os.environ.get("GLOCKD_TEST_DEB"):
        log(f"testing GLOCKD_TEST_DEB={os.environ['GLOCKD_TEST_DEB']}")
        return os.path.abspath(os.environ["GLOCKD_TEST_DEB"])
    os.makedirs(WORKDIR, exist_ok=True)
    debdir = os.path.join(WORKDIR, "deb")
    with open(os.path.join(WORKDIR, "deb.lock"), "w") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError("another test has been building the .deb too long")
                time.sleep(0.5)
        key, run = source_hash(), run_key()
        stamp = os.path.join(debdir, "built-from")
        debs = _debs(debdir)
        if debs and os.path.exists(stamp):
            built_hash, built_run = (open(stamp).read().split() + ["", ""])[:2]
            if built_run == run or built_hash == key:
                why = "in this test run" if built_run == run else "from these sources"
                log(f"reusing {debs[-1]} (built {why})")
                return os.path.join(debdir, debs[-1])
        failed = os.path.join(WORKDIR, "build-deb.failed")
        logpath = os.path.join(WORKDIR, "build-deb.log")
        if os.path.exists(failed) and open(failed).read().strip() == run:
            raise RuntimeError(f"scripts/build-deb already failed in this test run: {logpath}")
        log("building the .deb (scripts/build-deb, nocheck: the unit tests run elsewhere)")
        env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck noddebs")
        t = time.monotonic()
        newdir = debdir + ".new"
        shutil.rmtree(newdir, ignore_errors=True)
        with open(logpath, "w") as out:
            proc = subprocess.Popen([os.path.join(SOURCE_ROOT, "scripts", "build-deb"), newdir],
                                    stdout=out, stderr=subprocess.STDOUT, env=env)
            try:
                rc = proc.wait(timeout=max(10, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                kill_tree(proc)
                rc = "timeout"
        if rc != 0:
            with open(failed, "w") as f:
                f.write(run + "\n")
            with open(logpath) as f:
                tail = f.read()[-6000:]
            raise RuntimeError(f"scripts/build-deb failed ({rc}); end of {logpath}:\n{tail}")
        debs = _debs(newdir)
        if not debs:
            raise RuntimeError(f"scripts/build-deb made no glockd_*.deb in {newdir}")
        with open(os.path.join(newdir, "built-from"), "w") as f:
            f.write(f"{key} {run}\n")
        shutil.rmtree(debdir, ignore_errors=True)
        os.rename(newdir, debdir)
        log(f"built {debs[-1]} in {time.monotonic() - t:.1f}s")
        return os.path.join(debdir, debs[-1])
