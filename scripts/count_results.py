#!/usr/bin/python3
"""Sums meson testlog.json files into the one line CI reads: N passed, M failed."""
import argparse
import json
import os
import sys

ap = argparse.ArgumentParser()
ap.add_argument("logs", nargs="+")
ap.add_argument("--setup-failures", type=int, default=0)
args = ap.parse_args()

passed, failed, skipped = 0, args.setup_failures, 0
for path in args.logs:
    if not os.path.exists(path):
        print(f"missing test log {path}: counting as a failure")
        failed += 1
        continue
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            result = r.get("result")
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
                print(f"skipped: {r.get('name')} ({os.path.dirname(os.path.dirname(path))})")
            else:
                failed += 1
                print(f"FAILED: {r.get('name')} ({os.path.dirname(os.path.dirname(path))}): {result}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
