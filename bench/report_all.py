#!/usr/bin/env python3
"""Turns bench/run_all.sh's raw figures into results.md and gnuplot data files.

usage: report_all.py RAW_FILE OUT_DIR RATE_SECONDS

RAW_FILE lines: KIND key=value ... (ACCEPT, STREAM, IDLE), as run_all.sh writes them.
"""
import sys
from pathlib import Path


def parse(path):
    rows = []
    for line in Path(path).read_text().splitlines():
        kind, *pairs = line.split()
        row = {"kind": kind}
        for pair in pairs:
            key, _, value = pair.partition("=")
            row[key] = value
        rows.append(row)
    return rows


def num(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def flat(row, rate_seconds):
    """Flat: nearly all offered messages sent, all received within 5 s, p99 under 100 ms."""
    sent, received = num(row["sent"]), num(row["received"])
    offered = num(row["rate"]) * rate_seconds
    return sent >= 0.95 * offered and received == sent and num(row["p99"]) < 100


def main():
    raw, out, rate_seconds = parse(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    accept = [r for r in raw if r["kind"] == "ACCEPT"]
    stream = [r for r in raw if r["kind"] == "STREAM"]
    idle = {r["name"]: r for r in raw if r["kind"] == "IDLE"}
    later = {r["name"]: r for r in raw if r["kind"] == "IDLE_LATER"}
    nginx = next((num(r["accepted"]) for r in accept if r["name"] == "nginx"), None)
    md = []

    md.append("### POST /v1/messages at 64 connections (wrk)\n")
    md.append("| target | accepted/s | p50 ms | p99 ms | non-202 | vs nginx | stored/s (sustained) "
              "| CPU s per 1,000 messages, by process |")
    md.append("|---|---|---|---|---|---|---|---|")
    for r in accept:
        if r.get("mtas", "1") != "1":
            continue  # in the scaling table below
        ratio = f"{100 * num(r['accepted']) / nginx:.0f}%" if nginx else "-"
        cpu = ", ".join(f"{k[4:]} {v}" for k, v in r.items() if k.startswith("cpu_")) or "-"
        name = r["name"] + (" (1 of each process)" if "mtas" in r else "")
        md.append(f"| {name} | {r['accepted']} | {r['p50']} | {r['p99']} | {r['non202']} | {ratio} "
                  f"| {r['stored']} | {cpu} |")

    best_flat = {}
    for name in ("embedded", "split"):
        rows = [r for r in stream if r["name"] == name]
        if not rows:
            continue
        md.append(f"\n### {name}: POST -> receiver's WebSocket frame, {rate_seconds:.0f} s per rate\n")
        md.append("| offered msg/s | sent | received | p50 ms | p99 ms | p99.9 ms | flat | server CPU s per 1,000 |")
        md.append("|---|---|---|---|---|---|---|---|")
        for r in rows:
            ok = flat(r, rate_seconds)
            if ok:
                best_flat[name] = max(best_flat.get(name, 0), int(num(r["rate"])))
            received = num(r["received"])
            cpu = f"{num(r['cpu_s']) * 1000 / received:.3f}" if received else "-"
            md.append(f"| {r['rate']} | {r['sent']} | {r['received']} | {r['p50']} | {r['p99']} | {r['p999']} "
                      f"| {'yes' if ok else 'no'} | {cpu} |")
        md.append(f"\nHighest flat rate (all sent, all received, p99 < 100 ms): "
                  f"**{best_flat.get(name, 0)} msg/s**.")
        if name in idle:
            i = idle[name]
            md.append(f"Idle WebSockets: {i['opened']} open, gateway RSS {int(i['rss_before_kib']) // 1024} MiB -> "
                      f"{int(i['rss_after_kib']) // 1024} MiB {i.get('settle_s', 2)} s after the last opened: "
                      f"**{i['kib_per_socket']} KiB per socket**"
                      + (f" ({later[name]['kib_per_socket']} KiB {later[name]['settle_s']} s after)"
                         if name in later else "") + ".")

    scaling = [r for r in accept if "mtas" in r]
    if scaling:
        md.append("\n### split: intercomm mta processes on the same machine\n")
        md.append("| mta processes | accepted/s | stored/s | CPU s per 1,000 messages, by process |")
        md.append("|---|---|---|---|")
        for r in scaling:
            cpu = ", ".join(f"{k[4:]} {v}" for k, v in r.items() if k.startswith("cpu_"))
            md.append(f"| {r['mtas']} | {r['accepted']} | {r['stored']} | {cpu} |")
    (out / "results.md").write_text("\n".join(md) + "\n")

    with open(out / "latency.dat", "w") as f:
        f.write("# mode rate p50 p99 p999\n")
        for name in ("embedded", "split"):
            f.write(f"# {name}\n")
            for r in (r for r in stream if r["name"] == name):
                if num(r["received"]):
                    f.write(f"{r['rate']} {r['p50']} {r['p99']} {r['p999']}\n")
            f.write("\n\n")  # a gnuplot data block per mode
    with open(out / "scaling.dat", "w") as f:
        f.write("# mtas accepted stored\n")
        for r in scaling:
            f.write(f"{r['mtas']} {r['accepted']} {r['stored']}\n")


if __name__ == "__main__":
    main()
