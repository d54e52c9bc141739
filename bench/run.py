#!/usr/bin/env python3
"""Runs every bench executable beside its Python peer and reports mp's ratios.

Usage: bench/run.py [BUILD_DIR] [--rounds R] [--only NAME[,NAME...]] [--python PY]
                    [--no-write | --update]

Each round runs every executable and its peer, one right after the other
(which goes first alternates round by round, so that drift in the machine's
load hits both alike). A run's value for a (workload, impl) is the median of
the RESULT lines it printed; the reported value is the median over the rounds.
Ratios say how many times faster mp is than a peer (peer/mp for times, mp/peer
for throughputs) and are compared with bench/targets.txt. The table goes to
stdout and, unless --no-write, to docs/performance.md with the plot
docs/performance.png (queue throughput against message size). With --update
(and --only), only the rows of the benches that ran are replaced in the
existing docs/performance.md; the other rows, the plot and the first run's
description stay, and a line says which rows came from which later run.

Most benches are one executable and one peer script. bench_mpi is launched
differently (see mpi_commands): under mpirun, and also as `bench_mpi --pool`
(mp::Pool, no MPI) in the same round; without MPI in the build it is skipped.

This script runs under any Python 3; the peers run under --python (default:
`python3` on PATH, the reference interpreter). The plot needs matplotlib: if
this interpreter cannot import it, /usr/bin/python3 (Debian's, with
python3-matplotlib) draws it.
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
DOC = os.path.join(ROOT, "docs", "performance.md")
PLOT = os.path.join(ROOT, "docs", "performance.png")



def default_commands(exe, peer, python):
    """(label, command, is a Python peer) of each run in a round: the executable, then its peer."""
    return [(os.path.basename(exe), [exe], False), (os.path.basename(peer), [python, peer], True)]


MPIRUN = [os.path.join(ROOT, "scripts", "mpirun.sh"), "-n", "3"]
MPI_PYTHON = "/usr/bin/python3"  # Debian's: python3-mpi4py is built for it and for Debian's Open MPI


def mpi_commands(exe, peer, _python):
    """mp::mpi::Pool and mpi4py.futures, each a master and two worker ranks on this host,
    and mp::Pool(2) in one process (`bench_mpi --pool`, no mpirun) in the same round."""
    return [("bench_mpi (mpirun -n 3)", MPIRUN + [exe], False),
            ("mpi_peer.py (mpirun -n 3)", MPIRUN + [MPI_PYTHON, "-m", "mpi4py.futures", peer], True),
            ("bench_mpi --pool", [exe, "--pool"], False)]


# (executable in BUILD/bench, peer script in bench/peers[, how to launch them])
BENCHES = [
    ("bench_process", "process_peer.py"),
    ("bench_connection", "connection.py"),
    ("bench_listener", "listener_peer.py"),
    ("bench_subprocess", "subprocess.py"),
    ("bench_sync", "sync_peer.py"),
    ("bench_queue", "queue_peer.py"),
    ("bench_queue_sizes", "queue_sizes_peer.py"),
    ("bench_pool", "pool.py"),
    ("bench_object", "object_peer.py"),
    ("bench_futures", "futures_peer.py"),
    ("bench_manager", "manager_peer.py"),
    ("bench_mpi", "mpi_peer.py", mpi_commands),
]
OPTIONAL = {"bench_mpi"}  # built only when meson found MPI
PEERS = ["python", "boost", "raw"]  # the table's columns, in order
TIMEOUT = 600  # seconds for one executable or peer run
RESULT = re.compile(r"^RESULT\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")
SIZE = re.compile(r"^queue_mbps_(\d+)([km]?)$")


def is_throughput(unit):
    return unit.endswith("/s")


def ratio(unit, mp_value, peer_value):
    """How many times faster mp is than the peer."""
    if not mp_value or not peer_value:
        return None
    return mp_value / peer_value if is_throughput(unit) else peer_value / mp_value


def run_one(command, env=None):
    """Runs a command; returns ({(workload, impl): [values]}, {key: unit}, error or None)."""
    values, units = {}, {}
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=TIMEOUT, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return values, units, f"timed out after {TIMEOUT} s"
    except OSError as error:
        return values, units, str(error)
    for line in done.stdout.splitlines():
        match = RESULT.match(line)
        if not match:
            continue
        workload, impl, value, unit = match.groups()
        try:
            values.setdefault((workload, impl), []).append(float(value))
        except ValueError:
            continue
        units[(workload, impl)] = unit
    error = None
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        error = f"exit status {done.returncode}" + (f": {tail}" if tail else "")
    return values, units, error


def read_targets():
    targets = {}
    with open(os.path.join(BENCH, "targets.txt")) as file:
        for line in file:
            fields = line.split("#", 1)[0].split()
            if len(fields) == 3:
                targets[(fields[0], fields[1])] = float(fields[2])
    return targets


def load():
    return "{:.1f}".format(os.getloadavg()[0])


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": len(os.sched_getaffinity(0)), "kernel": platform.release(), "cpu": cpu}


def python_version(python):
    try:
        return subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                              stdout=subprocess.PIPE, text=True, timeout=60).stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def fmt_ratio(value):
    """Three significant figures, trailing zeros kept (0.906x, 2.00x, 44.4x), rounded
    down so that a ratio just under its target never shows as equal to it."""
    digits = 3 if value < 1 else 2 if value < 10 else 1 if value < 100 else 0
    return f"{math.floor(value * 10 ** digits) / 10 ** digits:.{digits}f}x"


def fmt_value(value):
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def collect(build, benches, rounds, python):
    """Runs the rounds; returns (medians {key: value}, units, errors [str])."""
    per_round = {}  # key -> [the median of each run]
    units, errors = {}, []
    peer_env = dict(os.environ, PYTHONSAFEPATH="1")  # the peers' own directory must not shadow the stdlib
    for round_index in range(rounds):
        for exe, peer, *launch in benches:
            commands = (launch[0] if launch else default_commands)(
                os.path.join(build, "bench", exe), os.path.join(BENCH, "peers", peer), python)
            if round_index % 2:
                commands.reverse()
            for name, command, is_peer in commands:
                started = time.monotonic()
                values, run_units, error = run_one(command, peer_env if is_peer else None)
                print(f"  round {round_index + 1}/{rounds}: {name} ({time.monotonic() - started:.1f} s)"
                      + (f" FAILED: {error}" if error else ""), file=sys.stderr, flush=True)
                if error:
                    errors.append(f"{name} (round {round_index + 1}): {error}")
                for key, value_list in values.items():
                    per_round.setdefault(key, []).append(statistics.median(value_list))
                units.update(run_units)
    medians = {key: statistics.median(values) for key, values in per_round.items()}
    return medians, units, errors


def build_rows(medians, units, targets):
    workloads = []
    for workload, _ in medians:
        if workload not in workloads:
            workloads.append(workload)
    for workload, _ in targets:  # a target whose workload printed nothing still shows
        if workload not in workloads:
            workloads.append(workload)
    rows = []
    for workload in workloads:
        unit = units.get((workload, "mp")) or next(
            (u for (w, _), u in units.items() if w == workload), "?")
        row = {"workload": workload, "unit": unit, "values": {}, "ratios": {}, "checks": []}
        row["values"]["mp"] = medians.get((workload, "mp"))
        impls = PEERS + sorted({i for (w, i) in medians if w == workload and i not in PEERS + ["mp"]})
        for impl in impls:
            row["values"][impl] = medians.get((workload, impl))
            row["ratios"][impl] = ratio(unit, row["values"]["mp"], row["values"][impl])
        for (target_workload, impl), target in targets.items():
            if target_workload != workload:
                continue
            value = row["ratios"].get(impl)
            row["checks"].append((impl, target, value, value is not None and value >= target))
        rows.append(row)
    return rows


def ratio_cell(row, impl):
    value = row["ratios"].get(impl)
    check = next((c for c in row["checks"] if c[0] == impl), None)
    text = "-" if value is None else fmt_ratio(value)
    if check:
        text += f" ({'≥' if check[3] else '<'}{check[1]:g} {'✓' if check[3] else '✗'})"
    return text


def met_cell(row):
    if not row["checks"]:
        return ""
    missed = [impl for impl, _, _, met in row["checks"] if not met]
    return "met" if not missed else "MISSED vs " + ", ".join(missed)


def table(rows):
    extra = sorted({impl for row in rows for impl in row["values"] if impl not in PEERS + ["mp"]})
    impls = PEERS + extra
    header = ["workload", "unit", "mp"] + impls + [f"mp vs {impl}" for impl in impls] + ["targets"]
    lines = []
    for row in rows:
        lines.append([row["workload"], row["unit"], fmt_value(row["values"]["mp"])]
                     + [fmt_value(row["values"].get(impl)) for impl in impls]
                     + [ratio_cell(row, impl) for impl in impls] + [met_cell(row)])
    return header, lines


def text_table(header, lines):
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines)]
    out = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths)).rstrip()]
    out.append("  ".join("-" * width for width in widths))
    out += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    return "\n".join(out)


def markdown_table(header, lines):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell or " " for cell in line) + " |" for line in lines]
    return "\n".join(out)


def size_bytes(workload):
    match = SIZE.match(workload)
    if not match:
        return None
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1 << 20}[match.group(2)]


def plot_series(medians):
    """{impl: [[bytes, MB/s], ...]} for the queue_mbps_<size> workloads."""
    series = {}
    for (workload, impl), value in medians.items():
        size = size_bytes(workload)
        if size is not None:
            series.setdefault(impl, []).append([size, value])
    for points in series.values():
        points.sort()
    return series


def draw(series, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = {"mp": "mp::Queue<std::string>", "python": "Python multiprocessing.Queue (fork)",
             "boost": "Boost.Interprocess message_queue", "raw": "raw pipe (write/read)"}
    figure, axes = plt.subplots(figsize=(8, 5))
    for impl in ["mp", "python", "boost", "raw"] + sorted(set(series) - set(names)):
        if impl in series:
            sizes, values = zip(*series[impl])
            axes.plot(sizes, values, marker="o", label=names.get(impl, impl))
    ticks = sorted({size for points in series.values() for size, _ in points})
    axes.set_xscale("log", base=2)
    axes.set_xticks(ticks)
    axes.set_xticklabels([f"{s >> 20} MiB" if s >= 1 << 20 else f"{s >> 10} KiB" if s >= 1024 else f"{s} B"
                          for s in ticks])
    axes.set_xlabel("message size")
    # Logarithmic: the peers differ by up to 100x, and on a linear axis
    # Python's line lies flat on zero.
    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axes.set_ylabel("throughput, MB/s (10^6 bytes), log scale")
    axes.set_title("1 producer process -> 1 consumer process (medians of the rounds)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(figure)


def plot(series, path):
    """Draws with this interpreter if it has matplotlib, else with /usr/bin/python3."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        fallback = "/usr/bin/python3"
        if os.path.realpath(sys.executable) == os.path.realpath(fallback) or not os.path.exists(fallback):
            return "matplotlib is missing (install python3-matplotlib)"
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
            json.dump(series, file)
        try:
            done = subprocess.run([fallback, os.path.abspath(__file__), "--plot", file.name, path],
                                  stderr=subprocess.PIPE, text=True, timeout=300)
        finally:
            os.unlink(file.name)
        return None if done.returncode == 0 else f"plotting failed: {done.stderr.strip()[-300:]}"
    draw(series, path)
    return None


HEAD = "<!-- Generated by `make bench` (bench/run.py); do not edit by hand. -->"
VALUES_NOTE = "Values are medians over the rounds"
UPDATE = "Rows of "  # how an --update line starts
TABLE_HEAD = "| workload |"
FAILURES = "Failures during the run:"
MISSED_CELL = re.compile(r"^(\S+) \(<([\d.]+) ✗\)$")  # "0.906x (<1 ✗)", as ratio_cell writes it


def run_description(info):
    """The sentence that says where the numbers come from, load included."""
    return (f"on {info['date']}, from one run: {info['rounds']} rounds, each running every bench "
            "executable and its Python peer one after the other"
            + (f" (only {', '.join(info['only'])})" if info["only"] else "")
            + f"; load average {info['load']} at the start, {info['load_end']} at the end.")


def missed_text(missed):
    """missed: [(workload, impl, ratio text or None, target text)]."""
    if not missed:
        return "Every target was met."
    return "Missed targets: " + "; ".join(
        f"{w} vs {impl} ({r or 'no result'}, target {t})" for w, impl, r, t in missed) + "."


def write_doc(header, lines, rows, info, errors, plotted):
    missed = [(row["workload"], impl, None if value is None else fmt_ratio(value), f"{target:g}")
              for row in rows for impl, target, value, met in row["checks"] if not met]
    preamble = [
        "# Performance",
        "",
        HEAD,
        "Generated by `make bench` " + run_description(info),
        "",
        f"Machine: {info['nproc']} CPUs (nproc), Linux {info['kernel']}, {info['cpu']}; "
        f"peers under Python {info['python']}. A shared, noisy VM: read the ratios, "
        "not the absolute values, and expect them to move by some tens of percent between runs.",
        "",
        VALUES_NOTE + " (of each run's median where a bench prints a line per "
        "inner round). A ratio says how many times faster mp is than the peer: peer/mp for times "
        "(ns/op), mp/peer for throughputs (MB/s), so above 1 means mp is faster. Targets come from "
        "bench/targets.txt (a target of 0.91 vs raw means mp takes at most 1.1 times the raw time).",
        "",
    ]
    failures = [f"- {error}" for error in errors]
    with open(DOC, "w") as file:
        file.write("\n".join(document(preamble, header, lines, missed, failures, plotted)))


def document(preamble, header, lines, missed, failures, plotted):
    text = preamble + [markdown_table(header, lines), "", missed_text(missed), ""]
    if failures:
        text += [FAILURES, ""] + failures + [""]
    text += [
        "## Queue throughput against message size",
        "",
        "bench/bench_queue_sizes.cpp and bench/peers/queue_sizes_peer.py: one producer process "
        "puts N messages of one size, the consumer (the parent) takes them; time from the "
        "producer's start until the last message was taken. mp::Queue<std::string>, Python's "
        "multiprocessing.Queue (fork context, bytes), Boost.Interprocess message_queue (named, "
        "up to 1024 fixed-size slots, at most 64 MiB), and a raw pipe carrying the same bytes "
        "(one write and one read loop per message).",
        "",
        "![Queue throughput against message size](performance.png)" if plotted
        else "(The plot could not be drawn in this run.)",
        "",
        "## Workloads",
        "",
        "- process_start_join: start and join a Process with a no-op target; raw is fork, _exit, waitpid.",
        "- pipe_pingpong: round trip of a small object over Pipe; raw is a socketpair and a fixed-size struct.",
        "- tcp_roundtrip: round trip of 19 bytes through Listener/Client over loopback TCP.",
        "- run_true, run_capture_echo: subprocess run of `true` / `echo hello` with captured output; "
        "raw is posix_spawn + waitpid, boost is boost::process::system.",
        "- lock_uncontended: acquire+release of Lock; raw is a robust process-shared pthread mutex.",
        "- value_increment_2proc: two processes incrementing a shared Value under its lock.",
        "- queue_*_1to1, queue_int_2to2: Queue items from producer to consumer processes (mp unbounded, as Python's default).",
        "- queue_*_1to1_bounded: mp::Queue(1024) beside Boost's message_queue of 1024 slots.",
        "- queue_1mib_1to1 raw: the same bytes through a 16-slot ring in shared memory whose pages exist "
        "before the clock starts, one memcpy in and one out, both sides spinning: the simplest transport, "
        "for reference (not a floor: its producer rewrites slots the consumer has just read).",
        "- queue_mbps_<size>: the throughput plot above.",
        "- pool_*: Pool(2) map (default chunksize and chunksize 1) and apply_async().get() of x*x.",
        "- queue_object_tuple_1to1: Queue<Object> of the tuple (1, 'abc', 2.5) from a producer process; "
        "Python's Queue of the same tuple.",
        "- pickle_dict_1000: pickle dumps then loads of {'key0': 0, ..., 'key999': 999}; Python's C pickle.",
        "- manager_dict_roundtrip: d[k] = v then d[k] through a Manager dict, from a child process; Python's Manager.",
        "- manager_value_increment_4: 4 processes each `with lock: value.value += 1` through a Manager Value and Lock.",
        "- mpi_*: mp::mpi::Pool under `mpirun -n 3` (a master and two worker ranks on this host, "
        "oversubscribed) beside mpi4py.futures' MPIPoolExecutor launched the same way "
        "(`python3 -m mpi4py.futures`, Debian's python3-mpi4py on the same Open MPI) and beside "
        "mp::Pool(2) in one process (mp_pool): map of x*x with each one's default chunking "
        "(200k items; 20k for mpi4py, whose default chunksize is 1), map of 20k items with chunksize 1, and apply round trips "
        "(submit().result() for mpi4py). A target of 0.667 vs mp_pool means mp::mpi takes at most "
        "1.5 times mp::Pool's time.",
        "",
    ]
    return text


def parse_doc(text):
    """The parts of an existing docs/performance.md that --update keeps: the preamble (up to
    the table, earlier update lines included), the table as [{column: cell}], the failure
    lines and whether the plot was drawn. None if it is not a generated document."""
    lines = text.split("\n")
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith(TABLE_HEAD))
    except StopIteration:
        return None
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    split = lambda line: [cell.strip() for cell in line.strip().strip("|").split("|")]
    header = split(lines[start])
    rows = [dict(zip(header, split(line))) for line in lines[start + 2:end]]
    failures = []
    if FAILURES in lines:
        i = lines.index(FAILURES) + 2
        while i < len(lines) and lines[i].startswith("- "):
            failures.append(lines[i])
            i += 1
    return {"preamble": lines[:start], "header": header, "rows": rows, "failures": failures,
            "plotted": any(line.startswith("![") for line in lines)}


def update_doc(header, lines, info, errors):
    """Replaces the rows of the workloads that ran (adding new ones at the end) in the
    existing document; every other row stays as the earlier run left it."""
    try:
        with open(DOC) as file:
            old = parse_doc(file.read())
    except OSError:
        old = None
    if old is None:
        return f"{os.path.relpath(DOC, ROOT)} has no table to update: run without --update"
    new_rows = [dict(zip(header, line)) for line in lines]
    fresh = {row["workload"]: row for row in new_rows}
    merged = [fresh.pop(row["workload"], row) for row in old["rows"]] + list(fresh.values())
    impls = [c for c in old["header"] + header
             if c not in ("workload", "unit", "mp", "targets") and not c.startswith("mp vs ")]
    impls = PEERS + sorted(set(impls) - set(PEERS))
    merged_header = ["workload", "unit", "mp"] + impls + [f"mp vs {impl}" for impl in impls] + ["targets"]
    merged_lines = [[row.get(c, "" if c == "targets" else "-") for c in merged_header] for row in merged]
    missed = []
    for row in merged:
        for impl in impls:
            match = MISSED_CELL.match(row.get(f"mp vs {impl}", ""))
            if match:
                missed.append((row["workload"], impl, None if match.group(1) == "-" else match.group(1),
                               match.group(2)))
    benches = ", ".join(info["only"])
    note = (f"{UPDATE}{benches} updated by `bench/run.py --only {benches} --update` "
            + run_description(info))
    preamble = []
    for line in old["preamble"]:  # an earlier update line of these benches goes, with its blank line
        if preamble and preamble[-1].startswith(UPDATE + benches + " ") and not line:
            preamble.pop()
        else:
            preamble.append(line)
    at = next((i for i, line in enumerate(preamble) if line.startswith(VALUES_NOTE)), len(preamble))
    preamble[at:at] = [note, ""]
    failures = ([line for line in old["failures"] if not line.startswith(f"- {benches}: ")]
                + [f"- {benches}: {error}" for error in errors])
    with open(DOC, "w") as file:
        file.write("\n".join(document(preamble, merged_header, merged_lines, missed, failures,
                                      old["plotted"])))
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("build", nargs="?", default=os.path.join(ROOT, "build"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", action="append", default=[],
                        help="run only these executables (bench_process, or process); repeatable or comma-separated")
    parser.add_argument("--python", default="python3", help="the interpreter of the Python peers")
    parser.add_argument("--no-write", action="store_true", help="do not write docs/performance.md and .png")
    parser.add_argument("--update", action="store_true",
                        help="with --only: replace only those benches' rows in docs/performance.md")
    parser.add_argument("--plot", nargs=2, metavar=("SERIES_JSON", "PNG"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.plot:  # the re-invocation under /usr/bin/python3 by plot()
        with open(args.plot[0]) as file:
            draw(json.load(file), args.plot[1])
        return 0

    benches = BENCHES
    if args.only:
        wanted = {name if name.startswith("bench_") else "bench_" + name
                  for item in args.only for name in item.split(",") if name}
        unknown = wanted - {bench[0] for bench in BENCHES}
        if unknown:
            parser.error(f"unknown bench: {', '.join(sorted(unknown))}")
        benches = [bench for bench in BENCHES if bench[0] in wanted]
    if args.update and (not args.only or args.no_write):
        parser.error("--update needs --only and excludes --no-write")
    build = os.path.abspath(args.build)
    skipped = [bench[0] for bench in benches
               if bench[0] in OPTIONAL and not os.path.exists(os.path.join(build, "bench", bench[0]))]
    for exe in skipped:
        print(f"skipped: {exe} is not built (meson found no MPI)", flush=True)
    benches = [bench for bench in benches if bench[0] not in skipped]
    info = dict(machine(), date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M %Z").strip(),
                rounds=args.rounds, python=python_version(args.python), load=load(),
                only=[bench[0] for bench in benches] if args.only else [])
    print(f"mp bench: {len(benches)} benches x {args.rounds} rounds; {info['nproc']} CPUs, "
          f"Linux {info['kernel']}, {info['cpu']}; peers: {args.python} {info['python']}", flush=True)

    medians, units, errors = collect(build, benches, args.rounds, args.python)
    info["load_end"] = load()
    targets = read_targets()
    if args.only:  # only the targets of the workloads that ran
        ran = {workload for workload, _ in medians}
        targets = {key: value for key, value in targets.items() if key[0] in ran}
    rows = build_rows(medians, units, targets)
    header, lines = table(rows)
    print()
    print(text_table(header, lines))
    missed = [f"{row['workload']} vs {impl}" for row in rows for impl, _, _, met in row["checks"] if not met]
    print()
    print("missed targets: " + (", ".join(missed) if missed else "none"))
    for error in errors:
        print(f"failed: {error}")

    if args.update:
        update_error = update_doc(header, lines, info, errors)
        print(update_error or f"updated the rows of {', '.join(info['only'])} in {os.path.relpath(DOC, ROOT)}")
        if update_error:
            return 1
    elif not args.no_write:
        series = plot_series(medians)
        plot_error = plot(series, PLOT) if series else "no queue_mbps results"
        if plot_error:
            print(f"plot: {plot_error}")
        write_doc(header, lines, rows, info, errors, plotted=plot_error is None)
        print(f"wrote {os.path.relpath(DOC, ROOT)}" + ("" if plot_error else f" and {os.path.relpath(PLOT, ROOT)}"))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
