"""What the benchmark scripts share: percentiles, number formatting, the CPU-time table, profile reports.

Public API: `percentile(samples, p)`, `ms(value)`, `cpu_table(measured, about)` → Markdown lines,
`profile_report(profiler, path, top)` → the top functions by cumulative time (the profile is also saved).
"""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
from pathlib import Path


def percentile(samples: list[float], p: int) -> float:
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


def ms(value: float) -> str:
    return f"{value:.1f}" if value >= 0.1 else f"{value:.3f}"


def cpu_table(measured, about: str) -> list[str]:
    """CPU time per sample of measurements that have it; `about` says whose CPU time that is."""
    if not measured:
        return []
    lines = ["", f"CPU time of {about}: less sensitive than wall time to other work on the machine.", "",
             "| measurement | CPU p50 | CPU p99 |", "|---|---:|---:|"]
    lines += [f"| {m.name} | {ms(m.percentile(50, cpu=True))} | {ms(m.percentile(99, cpu=True))} |" for m in measured]
    return lines


def profile_report(profiler: cProfile.Profile, path: Path, top: int = 25) -> str:
    profiler.dump_stats(path)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()
