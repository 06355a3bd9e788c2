#!/usr/bin/env python3
"""Helpers of bench/run.sh: parse tool outputs, time start-to-ready, write the report.

  report.py open-loop VEGETA.csv          -> JSON: rate, p50/p99/p99.9 (ms), success
  report.py nats-bench < nats-bench-output -> JSON: rps, p50/p99/p99.9 (ms)
  report.py ready RUNS OPS-PORT CMD...     -> JSON: spawn -> /readyz 200, ms per run
  report.py markdown RESULTS.jsonl k=v...  -> the markdown report on stdout
"""
import csv
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time



def idle_cell(idle):
    """Idle VmRSS in MiB, with its anonymous part when it was recorded."""
    if not idle:
        return "–"
    cell = fmt(int(idle[0]["rss_kib"]) / 1024)
    if idle[0].get("anon_kib"):
        cell += f" ({fmt(int(idle[0]['anon_kib']) / 1024)})"
    return cell

def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def open_loop(path):
    latencies, ok, total, first, last = [], 0, 0, None, None
    with open(path, newline="") as f:
        for row in csv.reader(f):
            # timestamp (ns), status code, latency (ns), ...
            ts, code, latency = int(row[0]), int(row[1]), int(row[2])
            total += 1
            first = ts if first is None else min(first, ts)
            last = ts if last is None else max(last, ts)
            if 200 <= code < 300:
                ok += 1
                latencies.append(latency / 1e6)
    latencies.sort()
    span = (last - first) / 1e9 if total > 1 else float("nan")
    return {
        "sent": total,
        "ok": ok,
        "success": ok / total if total else 0.0,
        "rate": total / span if span and span == span and span > 0 else float("nan"),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "p999_ms": percentile(latencies, 99.9),
    }


def nats_bench(text):
    """The publish rate and latencies of `nats bench js pub`: the aggregated
    line with several clients, the single publisher's line with one."""

    def number(s):
        return float(s.replace(",", ""))

    line = re.search(r"aggregated stats: ([\d,]+) msgs/sec", text) or re.search(
        r"publisher stats: ([\d,]+) msgs/sec.*", text)
    if not line:
        sys.exit("report.py: no publish stats in the nats bench output:\n" + text[-2000:])
    out = {"rps": number(line.group(1))}
    lat = re.search(r"latencies per operation.*", text) or line
    for key, label in (("p50_ms", "P50"), ("p99_ms", "P99"), ("p999_ms", "P99\\.9")):
        m = re.search(label + r":? ([\d,.]+)(us|ms|s)\b", lat.group(0))
        if m:
            out[key] = number(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    return out


def ready(runs, ops, cmd):
    times = []
    for _ in range(runs):
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", ops, timeout=2)
                    conn.request("GET", "/readyz")
                    if conn.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if proc.poll() is not None:
                    sys.exit("report.py: the receiver exited before it was ready")
                if time.monotonic() - start > 30:
                    sys.exit("report.py: the receiver was not ready within 30 s")
                time.sleep(0.001)
            times.append((time.monotonic() - start) * 1000)
        finally:
            proc.terminate()
            proc.wait()
    return {"runs_ms": [round(t, 1) for t in times], "median_ms": statistics.median(times)}


# --- the report ---------------------------------------------------------------

ROW_NAMES = {
    "bare": "bare axum+rustls server",
    "receiver-file": "receiver, JetStream file storage",
    "receiver-traced": "receiver, file storage, traces on (every request, to Jaeger)",
    "receiver-memory": "receiver, JetStream memory storage",
    "nats-bench": "`nats bench js pub sync` (file storage)",
    "nats-bench-async": "`nats bench js pub async`, 1 client (file storage)",
    "peer": "peer: Argo Events webhook EventSource",
    "forward": "forwarder → bare HTTP sink",
}


def fmt(x, digits=1):
    if x is None or x != x:
        return "–"
    if isinstance(x, float) and abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def markdown(results_path, opts):
    records = [json.loads(line) for line in open(results_path) if line.strip()]
    by_row = {}
    for r in records:
        by_row.setdefault(r["row"], []).append(r)

    def closed(row):
        out = []
        for r in by_row.get(row, []):
            if r["kind"] != "closed":
                continue
            w = json.loads(r["wrk"])
            secs = w["duration_us"] / 1e6
            ticks, nticks, clk = int(r["cpu_ticks"]), int(r["nats_ticks"]), int(r["clk_tck"])
            n = max(w["requests"], 1)
            out.append({
                "c": int(r["connections"]), "rps": w["requests"] / secs, "requests": w["requests"],
                "p50": w["p50_us"] / 1e3, "p99": w["p99_us"] / 1e3, "p999": w["p999_us"] / 1e3,
                "errors": w["errors_status"] + w["errors_connect"] + w["errors_read"]
                + w["errors_write"] + w["errors_timeout"],
                "non2xx": w["errors_status"], "wrapped": w["wrapped"],
                "cpu_ms_per_1k": ticks / clk * 1000 / n * 1000,
                "nats_cpu_ms_per_1k": nticks / clk * 1000 / n * 1000,
                "rss_mib": int(r["rss_kib"]) / 1024,
            })
        return out

    def kind(row, k):
        return [r for r in by_row.get(row, []) if r["kind"] == k]

    lines = []
    p = lines.append
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-").strip()
    mem = sh("awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo")
    p(f"Run started {opts.get('started')} (UTC), {opts.get('duration')} s per measurement.")
    p("")
    p(f"- machine: {os.cpu_count()} CPUs ({cpu}), {mem}, Linux {platform.release()}")
    p(f"- load generator and servers share these CPUs; pinning: servers {opts.get('cpus_server')}, "
      f"load generator {opts.get('cpus_load')}")
    p(f"- hookwarden {sh('git rev-parse --short HEAD')}{' (dirty tree)' if sh('git status --porcelain') else ''}, "
      f"{sh('rustc --version')}, release profile; {sh('wrk -v 2>&1 | head -1').split(' Copyright')[0]}; "
      f"vegeta {opts.get('vegeta', '')}".rstrip("; "))
    p("")

    # Closed loop (only when an HTTP row or nats bench ran: a forwarding-only
    # run has no requests to report).
    http_ran = any(kind(row, "closed") for row in ("bare", "receiver-file", "receiver-traced", "receiver-memory", "peer")) \
        or kind("nats-bench", "nats-bench") or kind("nats-bench-async", "nats-bench")
    mark = len(lines)
    p("### Closed loop (wrk, keep-alive, HTTP/1.1 over TLS 1.3)")
    p("")
    p("| row | connections | requests/s | p50 ms | p99 ms | p99.9 ms | non-2xx / errors | server CPU ms per 1k req | nats-server CPU ms per 1k req | server RSS MiB (under load) |")
    p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    best = {}
    for row in ("bare", "receiver-file", "receiver-traced", "receiver-memory", "peer"):
        for m in closed(row):
            p(f"| {ROW_NAMES[row]} | {m['c']} | {fmt(m['rps'], 0)} | {fmt(m['p50'], 2)} | {fmt(m['p99'], 2)} | "
              f"{fmt(m['p999'], 2)} | {m['non2xx']} / {m['errors'] - m['non2xx']} | {fmt(m['cpu_ms_per_1k'])} | "
              f"{fmt(m['nats_cpu_ms_per_1k']) if row != 'bare' else '–'} | {fmt(m['rss_mib'])} |")
            if m["rps"] > best.get(row, {"rps": 0})["rps"]:
                best[row] = m
    for row, unit in (("nats-bench", "clients"), ("nats-bench-async", "in flight")):
        for r in kind(row, "nats-bench"):
            s = json.loads(r["stats"])
            n = max(int(r["msgs"]), 1)
            ncpu = int(r["nats_ticks"]) / int(r["clk_tck"]) * 1000 / n * 1000
            p(f"| {ROW_NAMES[row]} | {r['connections']} {unit} | {fmt(s['rps'], 0)} | {fmt(s.get('p50_ms'), 2)} | "
              f"{fmt(s.get('p99_ms'), 2)} | {fmt(s.get('p999_ms'), 2)} | – | – | {fmt(ncpu)} | – |")
            if s["rps"] > best.get(row, {"rps": 0})["rps"]:
                best[row] = {"rps": s["rps"], "c": r["connections"], "nats_cpu_ms_per_1k": ncpu}
    # Only the receiver rows store by delivery id (the bare server stores
    # nothing, the peer makes its own ids): repeats matter there alone.
    receivers = ("receiver-file", "receiver-traced", "receiver-memory")
    wrapped = sum(m["wrapped"] for row in receivers for m in closed(row))
    wrapped += sum(int(r.get("wrapped", 0)) for r in records
                   if r["kind"] == "extra" and r["row"] in receivers)
    if wrapped:
        p("")
        p(f"Note: wrk ran out of distinct pre-signed requests {wrapped} times in the receiver rows and "
          "started over (JetStream dropped those repeats as duplicates); raise BENCH_WRK_REQUESTS.")
    p("")

    # Open loop and resources.
    p("### Open loop (vegeta, constant rate) and resources")
    p("")
    p(f"Open loop: vegeta at a constant rate (target → achieved), {opts.get('open_workers')} keep-alive connections; "
      "latency percentiles of the 2xx answers, and the share of 2xx.")
    p("")
    p("| row | max requests/s (closed loop) | at 50%: rate, p50 / p99 / p99.9 ms, ok | at 90%: rate, p50 / p99 / p99.9 ms, ok | CPU ms per 1k req at max | RSS idle MiB (of it anonymous) | RSS peak (VmHWM) MiB | stored / 2xx |")
    p("|---|---:|---|---|---:|---:|---:|---:|")
    open_at = {}
    for row in ("bare", "receiver-file", "receiver-traced", "receiver-memory", "peer"):
        if row not in best:
            continue
        cells = []
        for pct in ("50", "90"):
            rs = [r for r in kind(row, "open") if r["percent"] == pct]
            if not rs:
                cells.append("–")
                continue
            s = json.loads(rs[0]["stats"])
            open_at[(row, pct)] = s
            cells.append(f"{int(rs[0]['rate']):,} → {fmt(s['rate'], 0)}/s: {fmt(s['p50_ms'], 2)} / {fmt(s['p99_ms'], 2)} / "
                         f"{fmt(s['p999_ms'], 2)}, {s['success'] * 100:.2f}%")
        idle = kind(row, "idle")
        after = kind(row, "after")
        stored = kind(row, "stored")
        ok_total = sum(m["requests"] - m["non2xx"] for m in closed(row))
        ok_total += sum(json.loads(r["stats"])["ok"] for r in kind(row, "open"))
        ok_total += sum(int(r["ok"]) for r in kind(row, "extra"))
        stored_cell = f"{int(stored[0]['messages']):,} / {ok_total:,}" if stored else "–"
        p(f"| {ROW_NAMES[row]} | {fmt(best[row]['rps'], 0)} ({best[row]['c']} conns) | {cells[0]} | {cells[1]} | "
          f"{fmt(best[row]['cpu_ms_per_1k'])}"
          f"{' + ' + fmt(best[row]['nats_cpu_ms_per_1k']) + ' nats' if row != 'bare' else ''} | "
          f"{idle_cell(idle)} | "
          f"{fmt(int(after[0]['hwm_kib']) / 1024) if after else '–'} | {stored_cell} |")
    p("")
    unavailable = kind("peer", "unavailable")
    if unavailable:
        p(f"Peer: not run. {unavailable[0]['reason']}")
        p("")

    # Start to ready.
    rd = kind("receiver-file", "ready")
    ready_ms = None
    if rd:
        s = json.loads(rd[0]["stats"])
        ready_ms = s["median_ms"]
        p(f"### Start to ready\n\nreceiver spawn → `/readyz` 200 (NATS up, stream present), "
          f"{len(s['runs_ms'])} runs: median **{fmt(ready_ms)} ms** (runs: {', '.join(fmt(t) for t in s['runs_ms'])} ms)")
        p("")

    if not http_ran:
        del lines[mark:]

    # Forwarding.
    plain = kind("forward", "plain")
    forwarded = kind("forward", "forwarded")
    forward_ratio = None
    if plain or forwarded:
        p("### Forwarding (stored events → `hookwarden-receiver forward` → bare HTTP sink)")
        p("")
        in_flight = forwarded[0].get("in_flight", "?") if forwarded else "?"
        p(f"The same stored events (1 KiB JSON, file storage) read by a plain pull consumer that acknowledges "
          f"each, and by the forwarder (maxInFlight {in_flight}): each event signed (Standard Webhooks), POSTed "
          "over HTTP/1.1 to a bare sink on loopback that answers 204, then acknowledged; events/s from the first "
          "message (request) to the last. Forwarder CPU over its whole run, start included.")
        p("")
        p("| reader | events | events/s | CPU ms per 1k events | nats-server CPU ms per 1k events | RSS MiB (under load) | RSS peak (VmHWM) MiB | acknowledged |")
        p("|---|---:|---:|---:|---:|---:|---:|---:|")
        rates = {}
        for label, rs in (("plain JetStream consumer", plain), ("forwarder → HTTP sink", forwarded)):
            if not rs:
                continue
            r = rs[0]
            s = json.loads(r["stats"])
            n = max(int(s["events"]), 1)
            clk = int(r["clk_tck"])
            ncpu = int(r["nats_ticks"]) / clk * 1000 / n * 1000
            cpu = int(r["cpu_ticks"]) / clk * 1000 / n * 1000 if "cpu_ticks" in r else None
            rates[label] = s["rate"]
            if "acked" in r:  # the forwarder
                p(f"| {label} | {int(s['events']):,} | {fmt(s['rate'], 0)} | {fmt(cpu)} | {fmt(ncpu)} | "
                  f"{fmt(int(r['rss_kib']) / 1024)} | {fmt(int(r['hwm_kib']) / 1024)} | {int(r['acked']):,} |")
            else:  # the plain consumer acknowledges every event it reads
                p(f"| {label} | {int(s['events']):,} | {fmt(s['rate'], 0)} | – | {fmt(ncpu)} | – | – | "
                  f"{int(s['events']):,} |")
        if len(rates) == 2 and rates["plain JetStream consumer"]:
            forward_ratio = rates["forwarder → HTTP sink"] / rates["plain JetStream consumer"]
        p("")

    # Ratios and targets.
    def ratio(a, b):
        if a in best and b in best and best[b]["rps"]:
            return best[a]["rps"] / best[b]["rps"]
        return None

    p("### Ratios")
    p("")
    p("| ratio (max requests/s) | value |")
    p("|---|---:|")
    for a, b in (("receiver-file", "bare"), ("receiver-traced", "receiver-file"), ("receiver-memory", "bare"), ("receiver-file", "nats-bench"),
                 ("receiver-memory", "nats-bench"), ("receiver-file", "nats-bench-async"), ("receiver-memory", "nats-bench-async"),
                 ("receiver-file", "peer"), ("receiver-memory", "peer")):
        r = ratio(a, b)
        p(f"| {a} / {b} | {fmt(r, 2) if r is not None else 'not measured'} |")
    p(f"| forwarder / plain JetStream consumer (events/s) | "
      f"{fmt(forward_ratio, 2) if forward_ratio is not None else 'not measured'} |")
    p("")
    p("### Targets")
    p("")
    p("| target | measured | met |")
    p("|---|---|---|")

    def target(name, value, ok):
        p(f"| {name} | {value} | {'not measured' if ok is None else ('met' if ok else 'NOT met')} |")

    r = ratio("receiver-file", "bare")
    target("receiver ≥ 50% of the bare server's requests/s, durable (file) publish",
           f"{fmt(r * 100, 0)}%" if r is not None else "–", None if r is None else r >= 0.5)
    s = open_at.get(("receiver-file", "50"))
    target("p99 ≤ 5 ms at 50% of max (receiver, file storage, open loop)",
           f"{fmt(s['p99_ms'], 2)} ms" if s else "–", None if not s else s["p99_ms"] <= 5)
    idle = kind("receiver-file", "idle")
    idle_mib = int(idle[0]["rss_kib"]) / 1024 if idle else None
    target("idle RSS ≤ 20 MiB", f"{fmt(idle_mib)} MiB" if idle_mib else "–",
           None if idle_mib is None else idle_mib <= 20)
    anon_mib = int(idle[0]["anon_kib"]) / 1024 if idle and idle[0].get("anon_kib") else None
    target("idle anonymous (private) memory ≤ 4 MiB: RSS minus the binary's and libraries' pages mapped from files",
           f"{fmt(anon_mib)} MiB" if anon_mib else "–", None if anon_mib is None else anon_mib <= 4)
    target("ready ≤ 200 ms after start", f"{fmt(ready_ms)} ms" if ready_ms else "–",
           None if ready_ms is None else ready_ms <= 200)
    r = ratio("receiver-file", "nats-bench-async")
    target("receiver ≥ 0.6x `nats bench js pub async` (max requests/s, file storage)",
           f"{fmt(r, 2)}x" if r is not None else "–", None if r is None else r >= 0.6)
    r = ratio("receiver-file", "peer")
    target("≥ 2x the peer", f"{fmt(r, 2)}x" if r is not None else "peer not run",
           None if r is None else r >= 2)
    p("")

    # Profile.
    perf = opts.get("perf")
    if perf and os.path.exists(perf) and os.path.getsize(perf):
        p("### Receiver profile (perf, 64 connections, file storage): self time by symbol")
        p("")
        p("```")
        for line in open(perf).read().splitlines()[:30]:
            p(line.rstrip()[:140])
        p("```")
        p("")
    return "\n".join(lines)


def main():
    cmd = sys.argv[1]
    if cmd == "open-loop":
        print(json.dumps(open_loop(sys.argv[2])))
    elif cmd == "nats-bench":
        print(json.dumps(nats_bench(sys.stdin.read())))
    elif cmd == "ready":
        print(json.dumps(ready(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])))
    elif cmd == "markdown":
        opts = dict(a.split("=", 1) for a in sys.argv[3:])
        print(markdown(sys.argv[2], opts))
    else:
        sys.exit(f"report.py: unknown command {cmd!r}")


if __name__ == "__main__":
    main()
