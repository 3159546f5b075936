"""Policy engine benchmark: ``Policy.evaluate`` + ``estimate_volume`` over 2 M events, and
the memory curve of ``kaudit policy simulate`` and ``suggest`` against the traffic's size.

    .venv/bin/python bench/bench_policy.py            # 2 M events, best of 3, and the curve
    .venv/bin/python bench/bench_policy.py --events 200000 --repeat 1 --curve 200000,400000
    .venv/bin/python bench/bench_policy.py LAKE      # an existing lake (what bench/run.py does)
    .venv/bin/python bench/bench_policy.py --curve-only --curve 2000000,4000000

The lake is generated once (``kaudit_analytics.sample``, profile ``bodies``, seed 11) into
``bench/out/policy-lake`` and reused. The events are loaded into memory first (not timed:
the lake's read speed is the loader's benchmark). The policy is the 20-rule
``tests/fixtures/policy/property_policy.yaml``. The per-row reference (``request_info`` +
``evaluate_request`` per event, a Python loop) is timed on a 20 000-event slice and
extrapolated linearly to the full size; that is what the speed-up compares against.

The memory curve: for each size, ``kaudit generate --events N --seed 7`` (the ``metadata``
profile, about 1.5 M events a day) is ingested into ``bench/out/policy-curve-N`` (the log is
deleted once loaded), then ``kaudit policy simulate kubernetes-docs`` and ``kaudit policy
suggest --base kubernetes-docs`` each run in a fresh process, whose wall time and peak RSS
(``wait4``) are reported. The replay reads a day (or a slice of ``CHUNK_ROWS``) at a time, so
the peak should stay flat as the traffic grows. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
POLICY = HERE.parent / "tests" / "fixtures" / "policy" / "property_policy.yaml"
LOOP_SLICE = 20_000
CURVE = (2_000_000, 4_000_000, 8_000_000)  # --curve ...,16000000 for the 16 M point
KAUDIT = str(Path(sys.executable).parent / "kaudit")


def _curve_lake(events: int) -> Path:
    """The lake of ``kaudit generate --events N --seed 7``, made once.

    ``bench_compliance.py`` (run before this by ``make bench``) keeps the lakes of the same
    corpora (metadata profile, seed 7): they are read here rather than generated again, which
    would take longer than all the measuring (16 M events is ~11 GB of JSON).
    """
    name = "compliance-lake" if events == 2_000_000 else f"compliance-lake-{events}"
    same = HERE / "out" / name
    if (same / "events").is_dir():
        return same
    lake = HERE / "out" / f"policy-curve-{events}"
    if not (lake / "events").is_dir():
        log = HERE / "out" / f"policy-curve-{events}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"generating {events:,} events …", file=sys.stderr, flush=True)
        generate = [KAUDIT, "generate", "--events", str(events), "--seed", "7", "--out", str(log)]
        subprocess.run(generate, check=True, capture_output=True)
        subprocess.run(
            [KAUDIT, "ingest", str(log), "--lake", str(lake)], check=True, capture_output=True
        )
        log.unlink()
    return lake


def _peak(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (GiB) of one fresh process."""
    began = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        msg = f"failed: {' '.join(argv)}"
        raise SystemExit(msg)
    return time.perf_counter() - began, usage.ru_maxrss * 1024 / 2**30


def memory_curve(sizes: tuple[int, ...]) -> None:
    """Peak memory and time of simulate and suggest per traffic size (Markdown)."""
    rows = []
    for events in sizes:
        lake = str(_curve_lake(events))
        simulate = _peak(
            [KAUDIT, "policy", "simulate", "kubernetes-docs", "--lake", lake, "--json"]
        )
        suggest = _peak([KAUDIT, "policy", "suggest", "--lake", lake, "--base", "kubernetes-docs",
                         "--json"])  # fmt: skip
        rows.append((events, *simulate, *suggest))
    print("### Policy commands: peak memory against traffic size")
    print()
    print("`kaudit generate --events N --seed 7` (metadata profile), one fresh process per run.")
    print()
    print("| events | simulate (s) | simulate peak RSS | suggest (s) | suggest peak RSS |")
    print("|---:|---:|---:|---:|---:|")
    for events, sim_s, sim_gib, sug_s, sug_gib in rows:
        print(
            f"| {events:,} | {sim_s:,.1f} | {sim_gib:.2f} GiB | {sug_s:,.1f} | {sug_gib:.2f} GiB |"
        )


def _lake(events: int) -> Path:
    import kaudit_analytics as ka
    from kaudit_analytics.sample import generate

    lake = HERE / "out" / f"policy-lake-{events}"
    if not (lake / "events").is_dir():
        log = HERE / "out" / f"policy-bodies-{events}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        if not log.exists():
            generate(log, events=events, seed=11, profile="bodies")
        ka.ingest([log], lake)
    return lake


def _best(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    import kaudit_analytics as ka
    from kaudit_analytics.policy import (
        POLICY_KEEPS_STAGE,
        POLICY_LEVEL,
        POLICY_RULE,
        load_policy,
        request_info,
    )
    from kaudit_analytics.schema import GROUPS, REQUEST_URI, STAGE, USER, VERB

    parser = argparse.ArgumentParser()
    parser.add_argument("lake", nargs="?", help="an existing lake (bench/run.py passes one)")
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--curve",
        default=",".join(str(n) for n in CURVE),
        help="traffic sizes (events) of the memory curve, comma-separated; empty: none",
    )
    parser.add_argument("--curve-only", action="store_true", help="only the memory curve")
    args = parser.parse_args()
    sizes = tuple(int(n) for n in args.curve.split(",") if n.strip())
    if args.curve_only:
        memory_curve(sizes)
        return

    events = ka.scan(Path(args.lake) if args.lake else _lake(args.events)).collect()
    n = events.height
    policy = load_policy(POLICY)
    added = [POLICY_LEVEL, POLICY_RULE, POLICY_KEEPS_STAGE]

    evaluate_s = _best(lambda: policy.evaluate(events).select(added).collect(), args.repeat)
    estimate_s = _best(lambda: policy.estimate_volume(events), args.repeat)
    both_s = _best(
        lambda: (policy.evaluate(events).select(added).collect(), policy.estimate_volume(events)),
        args.repeat,
    )

    rows = events.head(LOOP_SLICE).select(VERB, REQUEST_URI, USER, GROUPS, STAGE).rows()
    began = time.perf_counter()
    for verb, uri, user, groups, stage in rows:
        try:
            info = request_info(verb or "", uri)
        except ValueError:
            continue
        cfg = policy.evaluate_request(info.attributes(user=user, groups=groups or ()))
        _ = cfg.level != "None" and stage not in cfg.omit_stages
    loop_s = (time.perf_counter() - began) * n / len(rows)

    est = policy.estimate_volume(events)
    print(
        f"### Policy engine ({n:,} events, {len(policy.rules)}-rule policy, best of {args.repeat})"
    )
    print()
    print("| step | seconds | events/s |")
    print("|---|---:|---:|")
    for name, secs in (
        ("`evaluate` (3 columns added, collected)", evaluate_s),
        ("`estimate_volume` (replay, by rule × level × stage, by day)", estimate_s),
        ("`evaluate` + `estimate_volume`", both_s),
        (
            f"per-row `request_info` + `evaluate_request` loop "
            f"(timed on {len(rows):,}, extrapolated)",
            loop_s,
        ),
    ):
        print(f"| {name} | {secs:,.2f} | {n / secs:,.0f} |")
    print()
    print(
        f"Speed-up of `evaluate` over the per-row loop: **{loop_s / evaluate_s:,.0f}×**; "
        f"`evaluate` + `estimate_volume` together: {both_s:,.2f} s (target < 5 s)."
    )
    print(
        f"Estimate: {est.events:,} events, {est.bytes / 1e6:,.1f} MB "
        f"(observed {est.observed_events:,} events, {est.observed_bytes / 1e6:,.1f} MB; "
        f"{est.modelled_bytes / max(est.bytes, 1):.1%} of bytes modelled)."
    )
    if sizes:
        print()
        # From a fresh process: a child's peak RSS counts its parent's at fork (here the
        # 2 M events above), so the curve is measured from a parent that holds none.
        curve = [sys.executable, __file__, "--curve-only", "--curve", args.curve]
        print(subprocess.run(curve, check=True, capture_output=True, text=True).stdout, end="")


if __name__ == "__main__":
    main()
