#!/usr/bin/env python3
"""Turns bench/run.sh's results.txt (one `tag=... server=... k=v ...` line per
load generator run) into the tables of bench/README.md: medians over rounds,
ratios taken within each round (then their median), and the issue's targets."""
import re
import statistics
import sys
from collections import defaultdict


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
            if "tag" not in kv:
                continue
            tag = kv["tag"]
            m = re.match(r"(.*)\.r(\d+)$", tag)
            kv["cfg"], kv["round"] = (m.group(1), int(m.group(2))) if m else (tag, 0)
            rows.append(kv)
    return rows


def num(row, key):
    try:
        return float(row[key])
    except (KeyError, ValueError):
        return None


def med(values):
    values = [v for v in values if v is not None and v >= 0]
    return statistics.median(values) if values else None


def fmt(v, digits=2):
    if v is None:
        return "n/a"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def anomalies_of(rs, keys):
    """Non-zero totals of the given counters over rounds, and a long silence."""
    out = []
    for key in keys:
        total = sum(num(r, key) or 0 for r in rs)
        if total:
            out.append(f"{key}={int(total)}")
    gap = max((num(r, "max_gap_ms") or 0) for r in rs)
    if gap >= 50:
        out.append(f"max_gap_ms={gap:.0f}")
    return out


def main():
    rows = load(sys.argv[1])
    by = defaultdict(list)  # (cfg, server) -> rows
    for r in rows:
        by[(r["cfg"], r["server"])].append(r)

    load_cfgs = sorted({r["cfg"] for r in rows if re.fullmatch(r"c\d+d\d+", r["cfg"])},
                       key=lambda c: tuple(int(x) for x in re.findall(r"\d+", c)))
    print()
    print("== load: g/r on own keys (Redis: SET NX / DEL), medians over rounds ==")
    print(f"{'config':<10} {'server':<7} {'req/s':>10} {'p50 us':>9} {'p99 us':>9} "
          f"{'p999 us':>9} {'srv us/req':>10} {'cli us/req':>10} {'other%':>6}  anomalies")
    for cfg in load_cfgs:
        for server in ("glockd", "echo", "redis"):
            rs = by.get((cfg, server), [])
            if not rs:
                continue
            anomalies = anomalies_of(rs, ("fail", "fail_release", "errors", "disconnects",
                                          "unanswered", "connect_failures",
                                          "protocol_errors", "stalls"))
            print(f"{cfg:<10} {server:<7} {fmt(med(num(r, 'rps') for r in rs)):>10} "
                  f"{fmt(med(num(r, 'p50_us') for r in rs)):>9} "
                  f"{fmt(med(num(r, 'p99_us') for r in rs)):>9} "
                  f"{fmt(med(num(r, 'p999_us') for r in rs)):>9} "
                  f"{fmt(med(num(r, 'server_us_per_req') for r in rs), 3):>10} "
                  f"{fmt(med(num(r, 'client_us_per_req') for r in rs), 3):>10} "
                  f"{fmt(med(num(r, 'other_cpu_pct') for r in rs), 0):>6}  "
                  f"{' '.join(anomalies) or '-'}")

    def ratio(cfg, key, a, b):
        """Median over rounds of value(a)/value(b), both from the same round."""
        per_round = {}
        for r in by.get((cfg, a), []):
            per_round.setdefault(r["round"], {})[a] = num(r, key)
        for r in by.get((cfg, b), []):
            per_round.setdefault(r["round"], {})[b] = num(r, key)
        vals = [v[a] / v[b] for v in per_round.values()
                if v.get(a) and v.get(b) and v[a] > 0 and v[b] > 0]
        return med(vals), len(vals)

    checks = []
    c50d1, c50d16 = "c50d1", "c50d16"
    many = next((c for c in load_cfgs if c not in (c50d1, c50d16)), None)
    for cfg, label in ((c50d1, "no pipelining"), (c50d16, "16 in flight")):
        checks.append((f"server CPU/req glockd/echo, 50 conns, {label}",
                       ratio(cfg, "server_us_per_req", "glockd", "echo"), "<=", 1.15))
    checks.append(("server CPU/req glockd/redis, 50 conns, no pipelining",
                   ratio(c50d1, "server_us_per_req", "glockd", "redis"), "<=", 0.9))
    checks.append(("server CPU/req glockd/redis, 50 conns, 16 in flight",
                   ratio(c50d16, "server_us_per_req", "glockd", "redis"), "<=", 0.7))
    for cfg, label in ((c50d1, "no pipelining"), (c50d16, "16 in flight")):
        checks.append((f"req/s glockd/redis, 50 conns, {label}",
                       ratio(cfg, "rps", "glockd", "redis"), ">=", 1.0))
    if many:
        checks.append((f"p99 glockd/redis, {many[1:-2]} conns",
                       ratio(many, "p99_us", "glockd", "redis"), "<=", 1.0))
        checks.append((f"server CPU/req glockd/echo, {many[1:-2]} conns (no target)",
                       ratio(many, "server_us_per_req", "glockd", "echo"), None, None))
        checks.append((f"server CPU/req glockd/redis, {many[1:-2]} conns (no target)",
                       ratio(many, "server_us_per_req", "glockd", "redis"), None, None))

    idle = {s: med(num(r, "bytes_per_conn") for r in by.get(("idle", s), []))
            for s in ("glockd", "echo", "redis")}
    idle_conns = next((r.get("conns") for r in by.get(("idle", "glockd"), [])), "?")
    orphan_rows = by.get(("orphan", "glockd"), [])
    orphan = med(num(r, "orphan_ms") for r in orphan_rows)
    poll_us = med(num(r, "poll_us") for r in orphan_rows)
    maxconn = by.get(("maxconn", "glockd"), [])

    print()
    print("== targets (ratios: median over rounds of the same-round ratio) ==")
    for name, (value, n), op, target in checks:
        if value is None:
            verdict = "n/a"
        elif op is None:
            verdict = ""
        else:
            ok = value <= target if op == "<=" else value >= target
            verdict = f"target {op} {target}: {'met' if ok else 'MISSED'}"
        print(f"{name:<58} {fmt(value, 3):>7}  ({n} rounds)  {verdict}")
    g = idle.get("glockd")
    print(f"{'RSS per idle connection holding a lock, glockd':<58} "
          f"{fmt(g, 0):>7} B  (echo {fmt(idle.get('echo'), 0)} B, redis "
          f"{fmt(idle.get('redis'), 0)} B; {idle_conns} conns)  target <= 2560 B: "
          f"{'n/a' if g is None else ('met' if g <= 2560 else 'MISSED')}")
    print(f"{'orphaned locks freed after the holder is killed':<58} "
          f"{fmt(orphan, 3):>7} ms  (poll of q every {fmt(poll_us, 0)} us)  target <= 20 ms: "
          f"{'n/a' if orphan is None else ('met' if orphan <= 20 else 'MISSED')}")
    for r in maxconn:
        holding, conns = int(num(r, "holding") or 0), int(num(r, "conns") or 0)
        print(f"{'simultaneous connections, each holding a lock':<58} "
              f"{holding:>7} of {conns} asked (failed {r.get('failed')}, refused "
              f"{r.get('refused')}, dropped {r.get('dropped')})  "
              f"{'met' if holding == conns else 'MISSED'}")

    extra = sorted({r["cfg"] for r in rows if "-d" in r["cfg"]})
    if extra:
        print()
        print("== glockd-only workloads (50 conns, 16 keys for contend/wait, w 100 ms), medians; "
              "max us and anomalies over all rounds ==")
        print(f"{'workload':<12} {'req/s':>10} {'p50 us':>9} {'p99 us':>9} {'max us':>10} "
              f"{'srv us/req':>10} {'ok':>10} {'fail take':>10} {'fail rel':>9}  anomalies")
        for cfg in extra:
            rs = by[(cfg, "glockd")]
            anomalies = anomalies_of(rs, ("errors", "disconnects", "unanswered",
                                          "protocol_errors", "stalls"))
            print(f"{cfg:<12} {fmt(med(num(r, 'rps') for r in rs)):>10} "
                  f"{fmt(med(num(r, 'p50_us') for r in rs)):>9} "
                  f"{fmt(med(num(r, 'p99_us') for r in rs)):>9} "
                  f"{fmt(max(num(r, 'max_us') or 0 for r in rs)):>10} "
                  f"{fmt(med(num(r, 'server_us_per_req') for r in rs), 3):>10} "
                  f"{int(med(num(r, 'ok') for r in rs) or 0):>10} "
                  f"{int(med(num(r, 'fail') for r in rs) or 0):>10} "
                  f"{int(med(num(r, 'fail_release') for r in rs) or 0):>9}  "
                  f"{' '.join(anomalies) or '-'}")


if __name__ == "__main__":
    main()
