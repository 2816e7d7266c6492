#!/usr/bin/python3
"""Turns bench/tls.sh's results.txt into the tables of bench/README.md
"TLS (issue 12)": medians over rounds, and the TLS/plain ratio of server CPU
per request taken within each round (then its median)."""
import re
import statistics
import sys
from collections import defaultdict

from summarize import fmt, med, num  # bench/summarize.py: the same figures, the same way


def main():
    rows = []
    with open(sys.argv[1]) as f:
        for line in f:
            kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
            m = re.match(r"(.*)\.r(\d+)$", kv.get("tag", ""))
            if not m or "mode" not in kv:
                continue
            kv["cfg"], kv["round"] = m.group(1), int(m.group(2))
            rows.append(kv)
    by = defaultdict(list)
    for r in rows:
        by[(r["cfg"], r["server"])].append(r)
    anomalies = ("errors", "unanswered", "disconnects", "protocol_errors", "tls_failures",
                 "connect_failures", "failures")

    def bad(rs):
        out = [f"{k}={int(sum(num(r, k) or 0 for r in rs))}" for k in anomalies
               if sum(num(r, k) or 0 for r in rs) > 0]
        return " ".join(out) or "-"

    load_cfgs = sorted({c for c, _ in by if re.fullmatch(r"c\d+d\d+", c)},
                       key=lambda c: (int(re.findall(r"\d+", c)[0]), -int(re.findall(r"\d+", c)[1])))
    print("== steady state: g/r on own keys, plain TCP vs TLS (EC P-256), medians over rounds ==")
    print("%-8s %-6s %11s %9s %9s %11s %11s %7s  %s" % (
        "config", "conn", "req/s", "p50 us", "p99 us", "srv us/req", "cli us/req", "other%",
        "anomalies"))
    for cfg in load_cfgs:
        for server in ("plain", "ec"):
            rs = by.get((cfg, server))
            if not rs:
                continue
            print("%-8s %-6s %11s %9s %9s %11s %11s %7s  %s" % (
                cfg, "tls" if server == "ec" else "plain",
                fmt(med(num(r, "rps") for r in rs), 0), fmt(med(num(r, "p50_us") for r in rs)),
                fmt(med(num(r, "p99_us") for r in rs)),
                fmt(med(num(r, "server_us_per_req") for r in rs), 3),
                fmt(med(num(r, "client_us_per_req") for r in rs), 3),
                fmt(med(num(r, "other_cpu_pct") for r in rs), 0), bad(rs)))
    print()
    print("== TLS/plain, server CPU per request (median over rounds of the same-round ratio) ==")
    for cfg in load_cfgs:
        plain = {r["round"]: num(r, "server_us_per_req") for r in by.get((cfg, "plain"), [])}
        tls = {r["round"]: num(r, "server_us_per_req") for r in by.get((cfg, "ec"), [])}
        ratios = sorted(tls[k] / plain[k] for k in plain
                        if k in tls and plain[k] and tls[k] is not None and plain[k] > 0)
        if not ratios:
            continue
        goal = "  goal <= 1.5: %s" % ("met" if statistics.median(ratios) <= 1.5 else "MISSED") \
            if cfg.endswith("d16") else "  (no goal)"
        print("%-8s %.3f  (%d rounds: %s)%s" % (cfg, statistics.median(ratios), len(ratios),
                                               " ".join("%.2f" % x for x in ratios), goal))
    print()
    print("== connection set-up: connect, handshake, one request, RST; medians over rounds ==")
    print("%-22s %10s %11s %11s %11s %11s %7s  %s" % (
        "server certificate", "conns/s", "srv us/conn", "cli us/conn", "p50 us", "p99 us",
        "other%", "anomalies"))
    names = {("hs", "plain"): "plain TCP (no TLS)", ("hs", "ec"): "TLS, EC P-256",
             ("hs", "rsa"): "TLS, RSA-2048", ("hs-resume", "ec"): "TLS, EC, resumed"}
    for key, name in names.items():
        rs = by.get(key)
        if not rs:
            continue
        print("%-22s %10s %11s %11s %11s %11s %7s  %s" % (
            name, fmt(med(num(r, "hs_per_s") for r in rs), 0),
            fmt(med(num(r, "server_us_per_hs") for r in rs), 1),
            fmt(med(num(r, "client_us_per_hs") for r in rs), 1),
            fmt(med(num(r, "p50_us") for r in rs)), fmt(med(num(r, "p99_us") for r in rs)),
            fmt(med(num(r, "other_cpu_pct") for r in rs), 0), bad(rs)))


if __name__ == "__main__":
    main()
