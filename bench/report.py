#!/usr/bin/env python3
"""Turn the results of `make bench` into charts and a table.

    bench/report.py BUILD [DOCS]

Reads BUILD/bench/results.jsonl (the last record of each bench and
implementation wins, so suites run on their own later replace earlier
rows), then writes into DOCS (default docs/):
  - bench-ratios.png: for every bench, cio's cost relative to each anchor
    (log scale; left of 1 means cio is cheaper);
  - bench-servers.png: server CPU per request and requests per second of
    every implementation of the server benches (echo, http, tls_echo, ...);
  - the table between the `bench-report` markers in benchmarks.md.
Charts need gnuplot (Debian gnuplot-nox); without it only the table is
written. `make bench-report` runs this on the default build.
"""
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

BEGIN = "<!-- bench-report:begin -->"
END = "<!-- bench-report:end -->"
# Units where a bigger value is better; everything else is a cost.
HIGHER_IS_BETTER = ("req/s", "ops/s", "q/s", "msg/s", "MiB/s", "lookups/s")
# Server benches: the CPU per request is what separates them here.
SERVER_FIELDS = ("cpu_us_per_req", "p99_us", "syscalls_per_req")


def load(path):
    rows = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "bench" in r and "impl" in r and "value" in r:
            rows[(r["bench"], r["impl"])] = r
    return rows


def is_cio(impl):
    return impl == "cio" or impl.startswith("cio-")


def better_high(unit):
    return any(unit.endswith(u) or unit == u for u in HIGHER_IS_BETTER)


def fmt(x):
    if isinstance(x, float) and abs(x) < 1000:
        return f"{x:.4g}"
    return f"{x:,.0f}"


def ratios(rows):
    """(label, ratio) pairs: cio's cost over each anchor's, per bench."""
    out = []
    benches = sorted({b for b, _ in rows})
    for b in benches:
        impls = [i for bb, i in rows if bb == b]
        ours = [i for i in impls if is_cio(i)]
        anchors = [i for i in impls if not is_cio(i)]
        if not ours or not anchors:
            continue
        for o in sorted(ours):
            cio = rows[(b, o)]
            who = b if o == "cio" else f"{b} {o}"
            for a in sorted(anchors):
                anc = rows[(b, a)]
                if not cio["value"] or not anc["value"]:
                    continue
                if "cpu_us_per_req" in cio and "cpu_us_per_req" in anc:
                    r = cio["cpu_us_per_req"] / anc["cpu_us_per_req"]
                    label = f"{who} CPU/req vs {a}"
                elif better_high(cio.get("unit", "")):
                    r = anc["value"] / cio["value"]
                    label = f"{who} vs {a}"
                else:
                    r = cio["value"] / anc["value"]
                    label = f"{who} vs {a}"
                out.append((label, r))
    return out


def table(rows):
    lines = ["| bench | impl | value | unit | extra |", "|---|---|---|---|---|"]
    for (b, i), r in sorted(rows.items()):
        extra = ", ".join(
            f"{k} {fmt(v)}" for k, v in r.items()
            if k not in ("bench", "impl", "value", "unit", "n", "runs")
            and isinstance(v, (int, float)))
        lines.append(f"| {b} | {i} | {fmt(r['value'])} | {r.get('unit', '')} "
                     f"| {extra} |")
    return "\n".join(lines)


def gnuplot(script, data, out):
    with tempfile.TemporaryDirectory() as tmp:
        dat = pathlib.Path(tmp) / "data.dat"
        dat.write_text(data)
        subprocess.run(["gnuplot"], input=script.replace("DATA", str(dat))
                       .replace("OUT", str(out)), text=True, check=True)


def chart_ratios(pairs, out):
    data = "".join(f'"{label}" {r}\n' for label, r in pairs)
    height = max(300, 22 * len(pairs) + 80)
    script = f"""
set terminal pngcairo size 900,{height} font ",9" noenhanced
set output "OUT"
set title "cio cost relative to each anchor (log scale; < 1: cio cheaper)"
set logscale x
set xrange [0.001:10]
set grid x
set ytics nomirror
set yrange [-1:{len(pairs)}]
set style fill solid 0.7
unset key
set arrow from 1, graph 0 to 1, graph 1 nohead lc rgb "black"
plot "DATA" using ($2 < 1 ? $2 : 1):0:(0.001 > $2 ? 0.001 : ($2 < 1 ? $2 : 1)):(1):($0-0.35):($0+0.35):ytic(1) with boxxyerrorbars lc rgb "#3a7d44", \\
     "DATA" using ($2 >= 1 ? $2 : 1):0:(1):($2 >= 1 ? $2 : 1):($0-0.35):($0+0.35) with boxxyerrorbars lc rgb "#b03a2e"
"""
    gnuplot(script, data, out)


def chart_servers(rows, out):
    benches = sorted({b for (b, i), r in rows.items() if "cpu_us_per_req" in r})
    if not benches:
        return False
    data = ""
    n = 0
    for b in benches:
        for (bb, i), r in sorted(rows.items()):
            if bb == b and "cpu_us_per_req" in r:
                data += f'"{b} {i}" {r["cpu_us_per_req"]} {r["value"]}\n'
                n += 1
    height = max(300, 22 * n + 80)
    top = max(r["cpu_us_per_req"] for r in rows.values()
              if "cpu_us_per_req" in r)
    script = f"""
set terminal pngcairo size 900,{height} font ",9" noenhanced
set output "OUT"
set title "Servers: CPU microseconds per request (bars) under the same load client"
set grid x
set xrange [0:{top * 1.45}]
set yrange [-1:{n}]
set style fill solid 0.7
unset key
plot "DATA" using ($2/2):0:($2/2):(0.35):ytic(1) with boxxyerrorbars lc rgb "#2e6da4", \\
     "DATA" using ($2):0:(sprintf(" %.2f us, %.0f req/s", $2, $3)) with labels left
"""
    gnuplot(script, data, out)
    return True


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    build = pathlib.Path(sys.argv[1])
    docs = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "docs")
    src = build / "bench" / "results.jsonl"
    if not src.exists():
        print(f"report.py: no {src}; run `make bench` first", file=sys.stderr)
        return 1
    rows = load(src)
    if not rows:
        print(f"report.py: {src} has no results", file=sys.stderr)
        return 1
    images = []
    if shutil.which("gnuplot"):
        pairs = ratios(rows)
        if pairs:
            chart_ratios(pairs, docs / "bench-ratios.png")
            images.append("bench-ratios.png")
        if chart_servers(rows, docs / "bench-servers.png"):
            images.append("bench-servers.png")
    else:
        print("report.py: gnuplot not found (apt-get install gnuplot-nox); "
              "table only", file=sys.stderr)
    block = [BEGIN, "", f"From `{src}` (`make bench`, then `make bench-report`).", ""]
    block += [f"![{img}]({img})\n" for img in images]
    block += [table(rows), "", END]
    md = docs / "benchmarks.md"
    text = md.read_text() if md.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + "\n".join(block) + tail
    else:
        text = text.rstrip("\n") + "\n\n## All results\n\n" + "\n".join(block) + "\n"
    md.write_text(text)
    print(f"report.py: {len(rows)} results; wrote {md}"
          + "".join(f", {docs / i}" for i in images))
    return 0


if __name__ == "__main__":
    sys.exit(main())
