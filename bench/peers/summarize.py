#!/usr/bin/env python3
"""Summarises bench/run-peers.sh measurements: medians over repetitions, one table, one JSON.

    summarize.py RAW.jsonl OUT.json [--meta key=value ...]

RAW holds one JSON object per line: {"scenario", "system", "rep", "m": {metric: value}}.
The JSON written has "meta", "medians" ({scenario: {system: {metric: median}}}), and "ratios"
({scenario: {metric: {"sluice/<peer>": ratio}}}, null where a side is missing).
"""
import json
import statistics
import sys
from collections import defaultdict

# The headline metrics of each scenario, in table order: (scenario, metric, label, unit).
HEADLINES = [
    ("s1", "upstream_calls", "1 storm: upstream calls for 500 identical GETs", "calls"),
    ("s1", "p99_ms", "1 storm: p99 from the common send instant", "ms"),
    ("s2", "rps", "2 cache hits on one URL", "req/s"),
    ("s3", "rps", "3 pass-through of no-store, fast upstream", "req/s"),
    ("s4", "added_p50_ms", "4 added p50 at 2,000 req/s (minus direct)", "ms"),
    ("s4", "added_p99_ms", "4 added p99 at 2,000 req/s (minus direct)", "ms"),
    ("s5_idle", "rss_kib", "5 RSS idle", "KiB"),
    ("s5", "rss_kib", "5 RSS after the cached requests over 10k keys", "KiB"),
    ("s5", "pss_kib", "5 PSS after (shared pages split)", "KiB"),
    ("s6", "saved_pct", "6 mixed Zipf + tenants: upstream calls saved", "%"),
    ("s6", "p99_ms", "6 mixed Zipf + tenants: p99", "ms"),
]
ORDER = ["sluice", "nginx-cache", "nginx-proxy", "varnish", "direct"]


def main():
    raw_path, out_path = sys.argv[1], sys.argv[2]
    meta = {}
    if "--meta" in sys.argv:
        for kv in sys.argv[sys.argv.index("--meta") + 1:]:
            key, _, value = kv.partition("=")
            meta[key] = value
    rows = [json.loads(line) for line in open(raw_path) if line.strip()]

    # Per-rep derived metrics: added latency against the direct run of the same repetition,
    # and the share of requests that did not reach the upstream.
    direct = {(r["scenario"], r["rep"]): r["m"] for r in rows if r["system"] == "direct"}
    for r in rows:
        m = r["m"]
        if r["scenario"] == "s4" and (d := direct.get(("s4", r["rep"]))):
            m["added_p50_ms"] = m["p50_ms"] - d["p50_ms"]
            m["added_p99_ms"] = m["p99_ms"] - d["p99_ms"]
        if r["scenario"] == "s6" and m.get("completed"):
            m["saved_pct"] = 100.0 * (1 - m["upstream_calls"] / m["completed"])

    samples = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in rows:
        for metric, value in r["m"].items():
            if isinstance(value, (int, float)):
                samples[r["scenario"]][r["system"]][metric].append(value)
    medians = {
        sc: {sys_: {met: statistics.median(v) for met, v in mets.items()}
             for sys_, mets in systems.items()}
        for sc, systems in samples.items()
    }
    reps = {sc: {sys_: len(next(iter(mets.values()), [])) for sys_, mets in systems.items()}
            for sc, systems in samples.items()}

    ratios = {}
    for sc, metric, _, _ in HEADLINES:
        systems = medians.get(sc, {})
        s = systems.get("sluice", {}).get(metric)
        for peer in ("nginx-cache", "nginx-proxy", "varnish"):
            if peer not in systems:
                continue
            p = systems[peer].get(metric)
            ratio = s / p if s is not None and p not in (None, 0) else None
            ratios.setdefault(sc, {}).setdefault(metric, {})[f"sluice/{peer}"] = ratio

    result = {"meta": meta, "medians": medians, "repetitions": reps, "ratios": ratios}
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")

    present = [s for s in ORDER if any(s in medians.get(sc, {}) for sc, *_ in HEADLINES)]
    print()
    print(f"medians over repetitions; load average {meta.get('load_start', '?')} at start, "
          f"{meta.get('load_end', '?')} at end; upstream: {meta.get('upstream', '?')}")
    header = f"| {'scenario':<48} | {'unit':<5} | " + " | ".join(f"{s:>11}" for s in present)
    header += " | sluice/nginx | sluice/varnish |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for sc, metric, label, unit in HEADLINES:
        if sc not in medians:
            continue
        cells = []
        for s in present:
            v = medians[sc].get(s, {}).get(metric)
            cells.append(f"{v:>11.1f}" if v is not None else f"{'-':>11}")
        r = ratios.get(sc, {}).get(metric, {})
        nginx_peer = "nginx-proxy" if sc in ("s3", "s4") else "nginx-cache"
        rn, rv = r.get(f"sluice/{nginx_peer}"), r.get("sluice/varnish")
        fmt = lambda x: f"{x:.2f}" if x is not None else "-"
        print(f"| {label:<48} | {unit:<5} | " + " | ".join(cells) +
              f" | {fmt(rn):>12} | {fmt(rv):>14} |")


if __name__ == "__main__":
    main()
