"""Bar chart of a benchmark report (``docs/_static/benchmarks.png``) from the ``bench.json`` of
``python -m posecommon.app.bench`` (see :func:`posecommon.app.bench.run_suite` for its structure).

Two panels, one bar group per model and one bar per measured mode (eager, fused, channels_last, compiled,
onnxruntime): forward latency at batch 1 (ms) and peak forward memory at batch 1 (MB; modes without a memory
figure, such as onnxruntime, are left out). The title gives torch version, threads and clock from the report.
Needs matplotlib (``pip install matplotlib``; only this script uses it).

    posezoo bench --quick --out-dir bench_results
    python docs/scripts/plot_benchmarks.py bench_results/bench.json --out docs/_static/benchmarks.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def bars(ax: plt.Axes, models: dict, key: str, label: str) -> None:
    """One group of bars per model, one bar per mode; ``key(entry)`` gives the bar height or None."""
    modes = list(dict.fromkeys(mode for row in models.values() for mode in row["modes"]))
    width = 0.8 / max(len(modes), 1)
    for i, mode in enumerate(modes):
        xs, heights = [], []
        for j, row in enumerate(models.values()):
            entry = row["modes"].get(mode)
            value = key(entry) if entry is not None else None
            if value is not None:
                xs.append(j + (i - (len(modes) - 1) / 2) * width)
                heights.append(value)
        if heights:
            ax.bar(xs, heights, width, label=mode)
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels(
        [f"{name}\n{'x'.join(str(v) for v in row['input_size'])}" for name, row in models.items()], fontsize=7
    )
    ax.set_ylabel(label)
    ax.grid(axis="y", alpha=0.3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", help="bench.json written by python -m posecommon.app.bench")
    parser.add_argument("--out", default="docs/_static/benchmarks.png")
    args = parser.parse_args(argv)

    report = json.loads(Path(args.report).read_text())
    models = report["models"]
    if not models:
        raise SystemExit(f"{args.report} has no model measurements")
    env = report.get("environment", {})
    fig, (latency_ax, memory_ax) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100)
    bars(latency_ax, models, lambda e: e["b1"]["ms"], "latency, batch 1 (ms)")
    bars(memory_ax, models, lambda e: e.get("peak_mb_b1"), "peak forward memory, batch 1 (MB)")
    latency_ax.legend(fontsize=7)
    fig.suptitle(
        f"torch {env.get('torch', '?')}, {env.get('threads', '?')} thread(s), {env.get('clock', '?')} clock",
        fontsize=9,
    )
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}: {len(models)} models")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
