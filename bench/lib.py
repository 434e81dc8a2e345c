#!/usr/bin/env python3
"""Helpers of the macro benchmark (bench/run.sh); standard library only.

    lib.py freeport                      a free TCP port on 127.0.0.1
    lib.py cpu POSTMASTER_PID PROXY_PID  CPU ticks so far: "<postgres> <proxy>"
    lib.py cpudiff "BEFORE" "AFTER"      seconds between two `cpu` readings: "<pg>\t<proxy>"
    lib.py rss PID                       "<VmRSS kB> <VmHWM kB>" ("0 0" for pid 0)
    lib.py report RESULTS.tsv OUT.md ... the report, between the markers of OUT.md

CPU of PostgreSQL is the postmaster's own and reaped children's time (utime, stime, cutime,
cstime of /proc/<postmaster>/stat) plus the utime+stime of its live children: backends that
exit between two readings are counted through the postmaster's cutime/cstime, so the
difference of two readings is the whole server's CPU in between. A proxy is one process; its
stat sums all its threads.
"""
import json
import os
import re
import socket
import statistics
import sys
import time
from collections import defaultdict

TICK = os.sysconf("SC_CLK_TCK")
BEGIN = "<!-- bench:begin (written by bench/run.sh; edit outside the markers) -->"
END = "<!-- bench:end -->"


def freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stat_fields(pid):
    """Fields of /proc/pid/stat after the command name (field 3 is index 0)."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2 :].split()


def cpu(postmaster, proxy):
    postmaster, proxy = int(postmaster), int(proxy)
    f = stat_fields(postmaster)
    # utime=14, stime=15, cutime=16, cstime=17 (1-based) -> indices 11..14 here.
    pg = sum(int(x) for x in f[11:15])
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            g = stat_fields(d)
        except (OSError, ValueError):
            continue
        if int(g[1]) == postmaster:
            pg += int(g[11]) + int(g[12])
    px = 0
    if proxy:
        g = stat_fields(proxy)
        px = int(g[11]) + int(g[12])
    return pg, px


def rss(pid):
    pid = int(pid)
    if pid == 0:
        return 0, 0
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


# ----------------------------------------------------------------------------------------------
# Report


def load(path):
    rows = []
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            vals = line.rstrip("\n").split("\t")
            vals += [""] * (len(header) - len(vals))
            rows.append(dict(zip(header, vals)))
    return rows


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt(x, digits=0):
    if x is None or x != x:
        return "–"
    return f"{x:,.{digits}f}"


def ratio_stats(by_rep, base_by_rep, higher_is_better=True):
    """Per-repetition ratios to the baseline of the same repetition: (median, min, max)."""
    rs = []
    for rep, v in by_rep.items():
        b = base_by_rep.get(rep)
        if b is None or v == 0 or b == 0:
            continue
        rs.append(v / b if higher_is_better else b / v)
    if not rs:
        return None
    return med(rs), min(rs), max(rs)


def fmt_ratio(r):
    if r is None:
        return "–"
    m, lo, hi = r
    return f"**{m:.2f}** ({lo:.2f}–{hi:.2f})"


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    kernel = os.uname().release
    return {
        "nproc": os.cpu_count(),
        "model": model,
        "memory": mem,
        "kernel": kernel,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load": load,
    }


def criterion_figures(root):
    """Median point estimates of every criterion benchmark under root (target/criterion)."""
    out = []
    if not os.path.isdir(root):
        return out
    for dirpath, _dirs, files in os.walk(root):
        if "estimates.json" in files and os.path.basename(dirpath) == "new":
            bench_dir = os.path.dirname(dirpath)
            try:
                with open(os.path.join(dirpath, "estimates.json")) as f:
                    est = json.load(f)
                with open(os.path.join(dirpath, "benchmark.json")) as f:
                    meta = json.load(f)
            except (OSError, ValueError):
                continue
            name = meta.get("full_id") or os.path.relpath(bench_dir, root)
            out.append((name, est["median"]["point_estimate"], os.path.getmtime(os.path.join(dirpath, "estimates.json"))))
    return sorted(out)


def ns(x):
    if x >= 1e6:
        return f"{x / 1e6:.2f} ms"
    if x >= 1e3:
        return f"{x / 1e3:.2f} µs"
    return f"{x:.0f} ns"


def pgbench_tables(L, present, names, values, cpu_per):
    L.append("### pgbench -S (TPS; ratio to direct)")
    L.append("")
    L.append("Direct and PgBouncer run as the `postgres` superuser; the role only matters to pgveil.")
    L.append("")
    L.append("| mode, clients | direct TPS | " + " | ".join(names[t] for t in present if t != "direct") + " |")
    L.append("|---|---|" + "---|" * (len(present) - 1))
    tests = [f"{mo} c{c}" for mo in ("simple", "extended", "prepared") for c in (1, 16)]
    for test in tests:
        base = values("pgbench", test, "direct")
        if not base:
            continue
        bv = list(base.values())
        cells = [f"{fmt(med(bv))} ({fmt(min(bv))}–{fmt(max(bv))})"]
        for t in present:
            if t == "direct":
                continue
            cells.append(fmt_ratio(ratio_stats(values("pgbench", test, t), base)))
        L.append(f"| {test} | " + " | ".join(cells) + " |")
    L.append("")
    L.append("CPU per transaction, whole server side (PostgreSQL + proxy), µs; in brackets the proxy's own share:")
    L.append("")
    L.append("| mode, clients | " + " | ".join(names[t] for t in present) + " |")
    L.append("|---|" + "---|" * len(present))
    for test in tests:
        if not values("pgbench", test, "direct"):
            continue
        cells = []
        for t in present:
            s = cpu_per("pgbench", test, t, "stack")
            p = cpu_per("pgbench", test, t, "proxy")
            cells.append(fmt(s, 1) + ("" if t == "direct" else f" ({fmt(p, 1)})"))
        L.append(f"| {test} | " + " | ".join(cells) + " |")
    L.append("")


def targets_table(L, values, cpu_per, opts, crit):
    """Issue 7's targets against this run: measured, met or not, and by how much."""
    rows = []

    def ratio(section, test, target):
        r = ratio_stats(values(section, test, target), values(section, test, "direct"), section != "stream")
        return r[0] if r else None

    def check(name, got, want, higher=True, unit="", digits=2):
        if got is None:
            rows.append((name, "–", want_s(want, higher, unit, digits), "not measured", ""))
            return
        ok = got >= want if higher else got <= want
        gap = "" if ok else (f"{want - got:.{digits}f}{unit} short" if higher else f"{got / want:.1f}x over")
        rows.append((name, f"{got:.{digits}f}{unit}", want_s(want, higher, unit, digits), "met" if ok else "**missed**", gap))

    def want_s(want, higher, unit, digits):
        return ("≥ " if higher else "≤ ") + f"{want:.{digits}f}{unit}"

    check("pgbench -S prepared c16, unrestricted (ratio)", ratio("pgbench", "prepared c16", "pgveil_full"), 0.80)
    check("pgbench -S prepared c16, restricted (ratio)", ratio("pgbench", "prepared c16", "pgveil_masked"), 0.75)
    check("pgbench -S prepared c1, unrestricted (ratio)", ratio("pgbench", "prepared c1", "pgveil_full"), 0.70)
    check("pgbench -S prepared c1, restricted (ratio)", ratio("pgbench", "prepared c1", "pgveil_masked"), 0.70)
    d = cpu_per("pgbench", "prepared c16", "direct", "stack")
    b = cpu_per("pgbench", "prepared c16", "pgbouncer", "stack")
    for t, label in (("pgveil_full", "unrestricted"), ("pgveil_masked", "restricted")):
        v = cpu_per("pgbench", "prepared c16", t, "stack")
        if d == d and b == b and v == v and b - d > 0:
            check(f"CPU added per tx, prepared c16, {label} (µs; ≤ half of PgBouncer's {b - d:.1f})", v - d, (b - d) / 2, False, " µs", 1)
    check("1M rows, 5 masked, text (ratio)", ratio("stream", "text", "pgveil_masked"), 0.95)
    check("1M rows, 5 masked, binary (ratio)", ratio("stream", "binary", "pgveil_masked"), 0.90)
    check("1M rows, 5 masked, COPY (ratio)", ratio("stream", "copy", "pgveil_masked"), 0.90)
    hs = int(opts.get("hwm-streams") or 0)
    if hs:
        check("pgveil peak RSS with 1M-row results (MiB)", hs / 1024, 64, False, " MiB", 1)
    growth = opts.get("idle-growth-kb")
    if growth is not None:
        check(f"{opts.get('idle')} idle sessions, pgveil RSS growth (MiB)", growth / 1024, 64, False, " MiB", 1)
    check("connections/s, unrestricted (ratio)", ratio("connect", "connect", "pgveil_full"), 0.70)
    check("connections/s, restricted (ratio)", ratio("connect", "connect", "pgveil_masked"), 0.70)
    est = {name: e for name, e, _ in crit}
    v = est.get("analysis/cold/analyst/bi_join_groupby")
    check("analysis, BI statement uncached (µs)", v / 1e3 if v else None, 20, False, " µs", 1)
    cached = [e for n, e in est.items() if n.startswith("analysis/cached/")]
    check("analysis from the cache, worst statement (µs)", max(cached) / 1e3 if cached else None, 2, False, " µs", 2)
    m, r0 = est.get("datarow/mask5_partial/text"), est.get("datarow/rebuild_no_mask/text")
    check("partial mask per value, in the DataRow (ns)", (m - r0) / 5 if m and r0 else None, 100, False, " ns", 0)
    L.append("### Targets of issue 7 in this run")
    L.append("")
    L.append("| target | measured | wanted | | gap |")
    L.append("|---|---|---|---|---|")
    for r in rows:
        L.append("| " + " | ".join(r) + " |")
    L.append("")


def report(args):
    results, out_path = args[0], args[1]
    opts = {}
    it = iter(args[2:])
    for k in it:
        opts[k.lstrip("-")] = next(it, "")
    rows = load(results)
    # (section, test, target) -> rep -> row
    data = defaultdict(dict)
    for r in rows:
        data[(r["section"], r["test"], r["target"])][r["rep"]] = r

    def values(section, test, target):
        return {rep: float(r["value"]) for rep, r in data.get((section, test, target), {}).items() if r["value"]}

    def cpu_per(section, test, target, which):
        """Median CPU µs per unit (transaction, connection, or the whole stream in s)."""
        xs = []
        for r in data.get((section, test, target), {}).values():
            # Streams report CPU per whole stream; the others per transaction or connection.
            n = float(r["units"].split("/")[1]) if "/" in r["units"] and section not in ("stream", "maskcost") else 1.0
            pg = float(r["pg_cpu_s"] or 0)
            px = float(r["proxy_cpu_s"] or 0)
            v = {"stack": pg + px, "proxy": px, "pg": pg}[which]
            xs.append(v / n * 1e6)
        return med(xs)

    m = machine()
    L = []
    L.append(BEGIN)
    L.append("")
    L.append(f"Run of {opts.get('started', '?')} to {opts.get('ended') or m['date']}: `{opts.get('command', 'bench/run.sh')}`")
    L.append("")
    L.append(
        f"Machine: {m['nproc']} CPUs ({m['model']}), {m['memory']} RAM, Linux {m['kernel']}; "
        f"load average at the end {opts.get('load') or m['load']}. {opts.get('pg-version', '')}; "
        f"{opts.get('bouncer-version') or 'PgBouncer not installed'}. Shared with other jobs: "
        "compare ratios within this run only, never absolute figures across runs."
    )
    L.append("")
    L.append(
        f"Settings: pgbench scale {opts.get('scale')}, `-T {opts.get('t')}` per run, {opts.get('reps')} interleaved "
        f"repetitions (the order of the targets rotates each repetition); wide table "
        f"{int(opts.get('rows', 0)):,} rows x 10 columns; SCRAM-SHA-256 on every TCP login "
        "(PostgreSQL, PgBouncer, pgveil); PgBouncer in session mode; pgveil with `RUST_LOG=warn`. "
        "Figures: median over the repetitions, (min–max) of the per-repetition values; ratios are "
        "taken per repetition against direct in the same repetition. CPU is the whole server side "
        "(every PostgreSQL process + the proxy) from /proc utime+stime; clients are not counted."
    )
    L.append("")

    # --- pgbench
    targets = ["direct", "pgbouncer", "pgveil_full", "pgveil_masked"]
    names = {
        "direct": "direct",
        "pgbouncer": "PgBouncer",
        "pgveil_full": "pgveil unrestricted",
        "pgveil_masked": "pgveil restricted",
        "direct_masksql": "direct, masks computed in SQL",
        "pgveil_masked_sql": "pgveil restricted, masks in SQL",
    }
    present = [t for t in targets if any(k[2] == t and k[0] == "pgbench" for k in data)]
    if present:
        pgbench_tables(L, present, names, values, cpu_per)

    # --- streams
    st_targets = ["direct", "direct_masksql", "pgbouncer", "pgveil_full", "pgveil_masked", "pgveil_masked_sql"]
    st_present = [t for t in st_targets if any(k[0] == "stream" and k[2] == t for k in data)]
    if st_present:
        L.append(f"### The wide result: {int(opts.get('rows', 0)):,} rows x 10 columns (throughput ratio to direct)")
        L.append("")
        L.append(
            "text: `psql -A -t -c 'SELECT * FROM wide' > /dev/null`; binary: `bench_client binary` "
            "(tokio-postgres `query_raw`, every column in binary, streamed); COPY: "
            "`psql -c 'COPY (SELECT * FROM wide) TO STDOUT' > /dev/null`. For the restricted role "
            "pgveil masks these 5 columns in the result rows itself (they are only selected). "
            "\"pgveil restricted, masks in SQL\" reads the same rows one query level down "
            "(`SELECT * FROM (SELECT * FROM wide) w`), where PostgreSQL computes the masks, as for "
            "any statement that filters, joins, sorts or computes on a masked column; \"direct, "
            "masks computed in SQL\" runs what pgveil forwards for that directly against "
            "PostgreSQL: the database's cost of the masks, without the proxy."
        )
        L.append("")
        L.append("| format | direct seconds | " + " | ".join(names[t] for t in st_present if t != "direct") + " |")
        L.append("|---|---|" + "---|" * (len(st_present) - 1))
        for test in ("text", "binary", "copy"):
            base = values("stream", test, "direct")
            if not base:
                continue
            bv = list(base.values())
            cells = [f"{fmt(med(bv), 2)} ({fmt(min(bv), 2)}–{fmt(max(bv), 2)})"]
            for t in st_present:
                if t == "direct":
                    continue
                cells.append(fmt_ratio(ratio_stats(values("stream", test, t), base, higher_is_better=False)))
            L.append(f"| {test} | " + " | ".join(cells) + " |")
        L.append("")
        L.append("Server-side CPU seconds per stream (PostgreSQL + proxy; in brackets the proxy's own):")
        L.append("")
        L.append("| format | " + " | ".join(names[t] for t in st_present) + " |")
        L.append("|---|" + "---|" * len(st_present))
        for test in ("text", "binary", "copy"):
            cells = []
            for t in st_present:
                s = cpu_per("stream", test, t, "stack") / 1e6
                p = cpu_per("stream", test, t, "proxy") / 1e6
                cells.append(fmt(s, 2) + ("" if t.startswith("direct") else f" ({fmt(p, 2)})"))
            L.append(f"| {test} | " + " | ".join(cells) + " |")
        L.append("")
        hs = int(opts.get("hwm-streams") or 0)
        L.append(
            f"pgveil peak RSS (VmHWM) after all pgbench runs and wide-result streams: **{hs / 1024:.1f} MiB**."
        )
        L.append("")

    # --- connections
    c_present = [t for t in targets if any(k[0] == "connect" and k[2] == t for k in data)]
    if c_present:
        L.append(f"### Connections: {opts.get('conns')} opened and closed in sequence (`pgbench -C -S -t {opts.get('conns')} -c 1`)")
        L.append("")
        L.append("| | " + " | ".join(names[t] for t in c_present) + " |")
        L.append("|---|" + "---|" * len(c_present))
        base = values("connect", "connect", "direct")
        bv = list(base.values())
        cells = [f"{fmt(med(bv))} ({fmt(min(bv))}–{fmt(max(bv))})"]
        for t in c_present[1:]:
            cells.append(fmt_ratio(ratio_stats(values("connect", "connect", t), base)))
        L.append("| connections/s (ratio to direct) | " + " | ".join(cells) + " |")
        cells = []
        for t in c_present:
            s = cpu_per("connect", "connect", t, "stack")
            p = cpu_per("connect", "connect", t, "proxy")
            cells.append(fmt(s) + ("" if t == "direct" else f" ({fmt(p)})"))
        L.append("| server CPU µs per connection (proxy) | " + " | ".join(cells) + " |")
        L.append("")

    # --- idle
    i_present = [t for t in targets if any(k[0] == "idle" and k[2] == t and k[1].startswith("pgbench") for k in data)]
    if i_present:
        test = next(k[1] for k in data if k[0] == "idle" and k[1].startswith("pgbench"))
        L.append(f"### {opts.get('idle')} idle sessions held while `pgbench -S -M prepared -c 8` runs")
        L.append("")
        L.append("| | " + " | ".join(names[t] for t in i_present) + " |")
        L.append("|---|" + "---|" * len(i_present))
        base = values("idle", test, "direct")
        bv = list(base.values())
        cells = [f"{fmt(med(bv))} ({fmt(min(bv))}–{fmt(max(bv))})"]
        for t in i_present[1:]:
            cells.append(fmt_ratio(ratio_stats(values("idle", test, t), base)))
        L.append("| TPS (ratio to direct with the same idle sessions) | " + " | ".join(cells) + " |")
        cells = []
        for t in i_present:
            rs = data.get(("idle", "proxy rss before/with idle (kB)", t), {})
            if t == "direct" or not rs:
                cells.append("–")
                continue
            before = med([float(r["proxy_rss_kb"]) for r in rs.values()])
            with_idle = med([float(r["value"]) for r in rs.values()])
            cells.append(f"{before / 1024:.1f} -> {with_idle / 1024:.1f} MiB (+{(with_idle - before) / 1024:.1f})")
            if t == "pgveil_masked":
                opts["idle-growth-kb"] = with_idle - before
        L.append("| proxy RSS before -> with the idle sessions | " + " | ".join(cells) + " |")
        he = int(opts.get("hwm-end") or 0)
        L.append("")
        L.append(f"pgveil peak RSS (VmHWM) at the end of the run: **{he / 1024:.1f} MiB**.")
        L.append("")

    # --- mask cost in PostgreSQL
    cols = ["name", "id_number", "phone", "email", "bank_card"]
    if any(k[0] == "maskcost" for k in data):
        L.append("### What each mask costs PostgreSQL when it is computed in SQL")
        L.append("")
        L.append(
            "`COPY (SELECT <column> FROM wide) TO STDOUT` directly, clear and as the masking SQL pgveil "
            "forwards when a statement computes on the column (`SELECT * FROM (SELECT <column> FROM "
            "wide) w` for the restricted login), no proxy in the path:"
        )
        L.append("")
        L.append("| column (mask) | clear s | masked SQL s | PostgreSQL CPU s clear -> masked | extra CPU per value |")
        L.append("|---|---|---|---|---|")
        masks = {"name": "cn_name", "id_number": "cn_id", "phone": "phone", "email": "email", "bank_card": "bank_card"}
        rows_n = float(opts.get("rows") or 1)
        for col in cols:
            c = values("maskcost", col, "clear")
            mk = values("maskcost", col, "masked")
            if not c or not mk:
                continue
            cc = cpu_per("maskcost", col, "clear", "pg") / 1e6
            mc = cpu_per("maskcost", col, "masked", "pg") / 1e6
            L.append(
                f"| {col} ({masks[col]}) | {fmt(med(list(c.values())), 2)} | {fmt(med(list(mk.values())), 2)} | "
                f"{fmt(cc, 2)} -> {fmt(mc, 2)} | {fmt((mc - cc) / rows_n * 1e9)} ns |"
            )
        L.append("")

    # --- syscalls (perf stat on the proxy)
    sc = [(t, r) for (sec, _test, t), reps in data.items() if sec == "syscalls" for r in reps.values()]
    if sc:
        L.append("### Syscalls and context switches of the proxy per transaction (`perf stat`, pgbench -S -M prepared -c 16)")
        L.append("")
        L.append("Four syscalls per transaction (read client, write upstream, read upstream, write client) is the floor for a proxy.")
        L.append("")
        L.append("| proxy | syscalls/tx | context switches/tx |")
        L.append("|---|---|---|")
        for t, r in sc:
            n = float(r["units"].split("/")[1] or 1)
            L.append(f"| {names.get(t, t)} | {float(r['value']) / n:.2f} | {float(r['pg_cpu_s']) / n:.2f} |")
        L.append("")

    # --- criterion
    crit = criterion_figures(opts.get("criterion", os.path.join(os.path.dirname(out_path), "target", "criterion")))
    crit = [c for c in crit if c[0].split("/")[0] in ("analysis", "policy", "datarow")]
    if crit:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(max(c[2] for c in crit)))
        L.append(f"### Micro-benchmarks (criterion, `cargo bench --bench analysis --bench datarow`; run of {when} on this machine)")
        L.append("")
        est = {name: e for name, e, _ in crit}
        stmts = []
        for name in est:
            parts = name.split("/")
            if parts[0] == "analysis" and len(parts) == 4 and parts[3] not in stmts:
                stmts.append(parts[3])
        roles = sorted({n.split("/")[2] for n in est if n.startswith("analysis/") and n.count("/") == 3})
        if stmts:
            L.append("Statement analysis (demo schema and rules; cold: `sql::analyze`, cached: `AnalysisCache::analyze` hit):")
            L.append("")
            L.append("| statement | " + " | ".join(f"{r} cold | {r} cached" for r in roles) + " |")
            L.append("|---|" + "---|---|" * len(roles))
            for st in stmts:
                cells = []
                for r in roles:
                    for kind in ("cold", "cached"):
                        v = est.get(f"analysis/{kind}/{r}/{st}")
                        cells.append(ns(v) if v is not None else "–")
                L.append(f"| {st} | " + " | ".join(cells) + " |")
            L.append("")
        L.append("| benchmark | median |")
        L.append("|---|---|")
        for name, e, _mtime in crit:
            if not name.startswith("analysis/"):
                L.append(f"| {name} | {ns(e)} |")
        L.append("")

    targets_table(L, values, cpu_per, opts, crit)

    failures = opts.get("failures")
    if failures and os.path.exists(failures):
        with open(failures) as f:
            lines = [x.strip() for x in f if x.strip()]
        if lines:
            L.append("**Failed measurements** (left out of the figures above):")
            L.append("")
            L.extend(f"- {x}" for x in lines)
            L.append("")

    sample = opts.get("sample")
    if sample and os.path.exists(sample):
        with open(sample) as f:
            txt = f.read().rstrip()
        L.append("What the restricted login reads (first rows of the wide table, through pgveil):")
        L.append("")
        L.append("```")
        L.append(txt)
        L.append("```")
        L.append("")
    L.append(END)
    block = "\n".join(L)

    old = ""
    if os.path.exists(out_path):
        with open(out_path) as f:
            old = f.read()
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END) :]
    else:
        new = "# Benchmarks\n\n" + block + "\n" + (("\n" + old) if old else "")
    with open(out_path, "w") as f:
        f.write(new)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "freeport":
        print(freeport())
    elif cmd == "cpu":
        pg, px = cpu(args[0], args[1])
        print(f"{pg} {px}")
    elif cmd == "cpudiff":
        b = [int(x) for x in args[0].split()]
        a = [int(x) for x in args[1].split()]
        print(f"{(a[0] - b[0]) / TICK:.2f}\t{(a[1] - b[1]) / TICK:.2f}")
    elif cmd == "rss":
        r, h = rss(args[0])
        print(f"{r} {h}")
    elif cmd == "report":
        report(args)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
