"""Workbook storage: dense (plain) vs sparse model, memory and field-update throughput.

    .venv/bin/python bench/workbook.py                       # 1,000 / 10,000 / 100,000 entries
    .venv/bin/python bench/workbook.py --sizes 1000 --reps 5 --json out.json

Each entry gets what the executor writes in one pass of the reference scenario
(src/wbsrun/examples/http_tri_phase, its workbook spec loaded with `load_plan`): user.context
(scope_trace, process_groups, stakeholder, procurement), 6 transitions (planning, waiting for
the lease, running, a throttle and back, closing), timeout_at, resource_lease, start_at, four
actions (probe-get, push-post, purge-delete, audit-warn) with their action_log records,
counters and latency, three milestones, the checkpoint's evidence snapshot and its rollback
snapshot. Memory is tracemalloc's traced size of the book after all passes (then after
`compact()`), per entry; both models are measured in the same process, one after the other.

Throughput: the same passes on live entries, timed per model, reported as field updates per
second (one update = one workbook write call: set/put/transition/begin/end/milestone) with
the model order alternating per repetition; medians and the sparse/dense ratio. The machine
is shared (2 cores): throughput figures are noisy, compare the ratio of one run, not runs.

CPU per pass: what the runner pays the workbook for one pass, in process CPU time: the
pass's writes plus the reads a run makes of the entry (the poller's counters on each health
check, its start/timeout window, the checkpoint's `workbook.state` conditions, the templates'
`workbook.scope_trace`), net of this script's own work (the same passes over a ledger that
does nothing, subtracted), and then `compact()` per entry: every closed entry is packed
once. Medians over the repetitions.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import shutil
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from wbsrun.core.ledger import Ledger, LedgerModel, open_workbook
from wbsrun.dsl.loader import load_plan
from wbsrun.dsl.plan import Plan, SamplingSpec
from wbsrun.protocols.registry import provides

BUNDLE = Path(__file__).resolve().parents[1] / "src" / "wbsrun" / "examples" / "http_tri_phase"
MODELS: tuple[LedgerModel, ...] = ("dense", "sparse")
ACTIONS = (
    ("probe-get", "http", "init_probe", "probe"),
    ("push-post", "http", "post_push", "push"),
    ("purge-delete", "http", "delete_purge", "purge"),
    ("audit-warn", "logger", "audit_stream", None),
)
# The memory and throughput figures measure the packed form of every entry: a reservoir that
# keeps them all (the default `aggregated` keeps 1,000 and drops the rest).
KEEP_ALL = SamplingSpec(keep_succeeded=2**31)
# Writes per pass (update calls), counted by `reference_pass` below.
UPDATES_PER_PASS = 4 + 6 + 3 + 4 * 2 + 3 + 1


def context_paths(plan: Plan) -> list[tuple[str, Any]]:
    """user.context keys → workbook paths, as the executor maps them."""
    spec = plan.workbook
    out = []
    for key, value in plan.scenarios[0].context.items():
        path = spec.expose.get(key)
        if path is None:
            section = next(s for s, d in spec.defaults.items() if key in d)
            path = f"{section}.{key}"
        out.append((path, value))
    return out


def reference_pass(
    book: Ledger[Any],
    entry: Any,
    context: list[tuple[str, Any]],
    t: float,
    rng: random.Random,
    *,
    reads: bool = False,
) -> int:
    """What the executor writes in one pass of the reference scenario; returns the update count.
    Times and latencies vary per entry the way real ones do (they are what packing cannot
    compress), everything else is the reference's own names and values. With `reads`, also
    the reads a run makes around those writes (`reference_reads`)."""
    for path, value in context:
        book.set(entry, path, value)
    phase = "initiating.idle"

    def move(to: str, trigger: str) -> None:
        nonlocal phase, t
        t += rng.uniform(0.0001, 0.05)
        book.transition(entry, phase, to, t, trigger)
        phase = to

    move("planning.ready", "plan")
    book.put(entry, "execution.timeout_at", t + 5.0)
    move("executing.waiting_resource", "lease")
    n = rng.randrange(1000)
    book.put(entry, "execution.resource_lease", f"127.0.{n // 250}.{n % 250 + 2}:18080")
    book.put(entry, "timeline.start_at", t)
    latency = 0.0
    for i, (action, owner, node, milestone) in enumerate(ACTIONS):
        if i == 0:
            move("executing.throttled", node)
            move("executing.running_action", node)
        latency = round(rng.lognormvariate(0.5, 0.6), 3)
        t += latency / 1000.0 + rng.uniform(0.00001, 0.001)
        book.begin_action(entry, action, t)
        book.end_action(entry, action, owner, t, "ok", latency, "success")
        if milestone is not None:
            book.reach_milestone(entry, milestone)
        if reads:
            reference_reads(book, entry, i)
    metrics = {"http.status": 200, "http.latency": latency}
    book.set(
        entry,
        "execution.evidence.snapshot",
        {"checkpoint": "monitor_checkpoint", "metrics": metrics},
    )
    book.snapshot(entry)  # the checkpoint's last stable point (dropped when the pass ends)
    move("closing.success", "close")
    return UPDATES_PER_PASS


def reference_reads(book: Any, entry: Any, stage: int) -> None:
    """The reads a run makes of an entry around one pass's writes: after each action the
    poller's health check (counters; the start/timeout window once), the request templates'
    `workbook.scope_trace`, at the checkpoint its two `workbook.state` conditions."""
    book.get(entry, "telemetry.counters")
    if stage == 0:
        book.get(entry, "timeline.start_at")
        book.get(entry, "execution.timeout_at")
        book.get(entry, "scope_trace")
    elif stage == 3:
        book.get(entry, "scope_trace")
        book.get(entry, "state")
        book.get(entry, "state")


class _NullEntry:
    __slots__ = ()


class _NullBook:
    """A ledger that does nothing: what the passes cost this script itself."""

    def open(self, user_id: str, task_id: str, scenario: str) -> _NullEntry:
        return _NullEntry()

    def _nothing(self, *args: Any) -> None:
        return None

    set = put = transition = begin_action = end_action = reach_milestone = get = _nothing
    snapshot = _nothing


def cpu_pass(
    model: LedgerModel | None, plan: Plan, n: int, sampling: SamplingSpec = KEEP_ALL
) -> tuple[float, float]:
    """(CPU µs per pass, CPU µs per closed entry compacted: folded, then packed, dropped or
    encoded for disk, by `sampling`) of `n` passes with their reads; `None` runs the null
    ledger (the script's own share). A `full` book writes to a temp dir; its writer thread's
    CPU (compression) counts too, up to `finish()`."""
    out = Path(tempfile.mkdtemp(prefix="wbsrun-bench-ledger-"))
    book: Any = (
        open_workbook(plan.workbook, model, sampling, out) if model is not None else _NullBook()
    )
    context = context_paths(plan)
    rng = random.Random(1)
    t = 1.7e9 + rng.random()
    gc.collect()
    gc.disable()
    try:
        t0 = time.process_time()
        for i in range(n):
            uid = f"u{i:06d}"
            entry = book.open(uid, f"{uid}-t0", "http-bulk-refresh")
            reference_pass(book, entry, context, t + i * 0.001, rng, reads=True)
        t1 = time.process_time()
        if model is not None:
            book.finish()
        t2 = time.process_time()
    finally:
        gc.enable()
        shutil.rmtree(out, ignore_errors=True)
    return (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6 if model is not None else 0.0


def fill(model: LedgerModel, plan: Plan, n: int) -> tuple[Ledger[Any], int]:
    book = open_workbook(plan.workbook, model, KEEP_ALL)
    context = context_paths(plan)
    updates = 0
    rng = random.Random(1)
    t = 1.7e9 + rng.random()
    for i in range(n):
        uid = f"u{i:06d}"
        entry = book.open(uid, f"{uid}-t0", "http-bulk-refresh")
        updates += reference_pass(book, entry, context, t + i * 0.001, rng)
    return book, updates


def memory(model: LedgerModel, plan: Plan, n: int) -> dict[str, float]:
    gc.collect()
    tracked = len(gc.get_objects())
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    book, _ = fill(model, plan, n)
    live = tracemalloc.get_traced_memory()[0] - base
    packed_n = book.compact()
    gc.collect()
    compacted = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    # Objects the cyclic collector walks on every full collection (why the runner freezes).
    tracked = len(gc.get_objects()) - tracked
    assert len(book.entries) == n
    del book
    return {
        "entries": n,
        "live_bytes_per_entry": live / n,
        "compacted_bytes_per_entry": compacted / n,
        "packed_entries": packed_n,
        "gc_tracked_per_entry": tracked / n,
    }


def throughput(model: LedgerModel, plan: Plan, n: int) -> tuple[float, float]:
    """(updates/s, compact() µs per entry) with no tracing on."""
    gc.collect()
    t0 = time.perf_counter()
    book, updates = fill(model, plan, n)
    t1 = time.perf_counter()
    packed = book.compact()
    t2 = time.perf_counter()
    return updates / (t1 - t0), (t2 - t1) / packed * 1e6 if packed else 0.0


def same_export(plan: Plan) -> None:
    """Guard: the figures compare equal content (and compaction keeps it)."""
    dense, _ = fill("dense", plan, 3)
    sparse, _ = fill("sparse", plan, 3)
    before = [sparse.export(e) for e in sparse.entries]
    sparse.compact()
    assert [dense.export(e) for e in dense.entries] == before
    assert [sparse.export(e) for e in sparse.entries] == before


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--reps", type=int, default=3, help="throughput repetitions per model")
    ap.add_argument("--tput-entries", type=int, default=10_000)
    ap.add_argument("--cpu-entries", type=int, default=10_000, help="passes per CPU figure")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    plan = load_plan(BUNDLE, provides())
    same_export(plan)
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, Any] = {"memory": [], "throughput": {}}
    print(
        f"{'entries':>8} {'model':>7} {'live B/entry':>13} {'vs dense':>9}"
        f" {'compacted B/entry':>18} {'vs dense':>9} {'gc objs/entry':>14}"
    )
    for n in sizes:
        rows = {m: memory(m, plan, n) for m in MODELS}
        dense = rows["dense"]["live_bytes_per_entry"]
        for m in MODELS:
            row = rows[m]
            live, packed = row["live_bytes_per_entry"], row["compacted_bytes_per_entry"]
            print(
                f"{n:>8} {m:>7} {live:>13.0f} {live / dense:>9.1%}"
                f" {packed:>18.0f} {packed / dense:>9.1%} {row['gc_tracked_per_entry']:>14.1f}"
            )
            results["memory"].append({"model": m, **row, "dense_live_bytes_per_entry": dense})
    runs: dict[str, list[float]] = {m: [] for m in MODELS}
    compact_us: list[float] = []
    for rep in range(args.reps):
        order = MODELS if rep % 2 == 0 else MODELS[::-1]
        for m in order:
            rate, per_entry = throughput(m, plan, args.tput_entries)
            runs[m].append(rate)
            if m == "sparse":
                compact_us.append(per_entry)
    medians: Mapping[str, float] = {m: statistics.median(v) for m, v in runs.items()}
    ratios = [s / d for s, d in zip(runs["sparse"], runs["dense"], strict=True)]
    for m in MODELS:
        reps = ", ".join(f"{v:,.0f}" for v in runs[m])
        print(f"updates/s {m:>7}: median {medians[m]:>12,.0f}   ({reps})")
    print(
        f"sparse/dense: median {medians['sparse'] / medians['dense']:.2f}"
        f"   per rep {', '.join(f'{r:.2f}' for r in ratios)}"
    )
    print(f"compact(): median {statistics.median(compact_us):.1f} µs per sparse entry")
    results["throughput"] = {
        "runs": runs,
        "medians": medians,
        "ratios": ratios,
        "compact_us_per_entry": compact_us,
    }
    own: list[float] = []
    cpu: dict[str, list[tuple[float, float]]] = {m: [] for m in MODELS}
    for rep in range(args.reps):
        own.append(cpu_pass(None, plan, args.cpu_entries)[0])
        for m in MODELS if rep % 2 == 0 else MODELS[::-1]:
            cpu[m].append(cpu_pass(m, plan, args.cpu_entries))
    script = statistics.median(own)
    results["cpu_per_pass"] = {"script_us": script}
    for m in MODELS:
        writes = statistics.median(p for p, _ in cpu[m]) - script
        packs = statistics.median(c for _, c in cpu[m])
        print(
            f"CPU per pass {m:>7}: {writes:6.2f} µs writes+reads+snapshot"
            f" + {packs:5.2f} µs compact = {writes + packs:6.2f} µs"
            f"   (script's own {script:.2f} µs subtracted)"
        )
        results["cpu_per_pass"][m] = {"pass_us": writes, "compact_us": packs}
    # The sampling modes' cost at the close, sparse model: fold + pack (every entry kept, as
    # before the modes), fold + drop (`aggregated` past its caps), fold + disk (`full`).
    modes = {"keep-all": KEEP_ALL, "aggregated": SamplingSpec(), "full": SamplingSpec("full")}
    closes: dict[str, list[float]] = {name: [] for name in modes}
    for rep in range(args.reps):
        for name, spec in modes.items() if rep % 2 == 0 else reversed(modes.items()):
            closes[name].append(cpu_pass("sparse", plan, args.cpu_entries, spec)[1])
    for name, values in closes.items():
        print(f"close, sparse {name:>10}: {statistics.median(values):5.2f} µs per entry")
    results["close_us_per_entry"] = {k: statistics.median(v) for k, v in closes.items()}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


_: Callable[[], None] = main

if __name__ == "__main__":
    main()
