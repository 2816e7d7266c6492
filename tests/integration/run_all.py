# Runs every tests/integration/test_*.py file (each in its own interpreter,
# two at a time) and exits non-zero if any of them failed.
#
#   /usr/bin/python3 tests/integration/run_all.py [-v] [test_x.py ...]
#
# The daemon binary comes from $GLOCKD_BIN (default /work/main/build/glockd).

import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PARALLEL = int(os.environ.get("GLOCKD_TEST_JOBS", "2"))
FILE_TIMEOUT = 300


def main(argv):
    verbose = "-v" in argv
    names = [a for a in argv if not a.startswith("-")]
    files = [os.path.join(HERE, n) for n in names] if names else sorted(
        os.path.join(HERE, f) for f in os.listdir(HERE)
        if f.startswith("test_") and f.endswith(".py"))
    pending = list(files)
    running = []
    results = []
    start = time.monotonic()
    while pending or running:
        while pending and len(running) < PARALLEL:
            f = pending.pop(0)
            cmd = [sys.executable, f] + (["-v"] if verbose else [])
            log = tempfile.TemporaryFile()
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            running.append((f, p, time.monotonic(), log))
        for item in list(running):
            f, p, t0, log = item
            if p.poll() is None:
                if time.monotonic() - t0 > FILE_TIMEOUT:
                    p.kill()
                else:
                    continue
            p.wait()
            log.seek(0)
            out = log.read().decode("utf-8", "replace")
            log.close()
            running.remove(item)
            results.append((f, p.returncode, time.monotonic() - t0, out))
        time.sleep(0.02)
    failed = 0
    for f, rc, secs, out in sorted(results):
        status = "ok" if rc == 0 else "FAILED (exit %s)" % rc
        print("%-24s %-18s %6.1f s" % (os.path.basename(f), status, secs))
        if rc != 0 or verbose:
            failed += rc != 0
            print(out)
    print("%d file(s), %d failed, %.1f s" % (len(results), failed, time.monotonic() - start))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
