"""Plot the training curve of a run directory (``docs/_static/training_curve.png``).

Reads ``RUN/metrics.jsonl`` as :class:`posecommon.Trainer` writes it: one JSON object per step
(``{"step", "loss", "lr", ...}``) and one per evaluation (``{"step", "eval": {"AP", ...}}``). The left axis shows
the training loss per step (faint) and its running mean; the right axis the COCO keypoint AP of each evaluation.
Needs matplotlib (``pip install matplotlib``; only this script uses it).

    python docs/scripts/plot_training_curve.py /tmp/run_vt2 --out docs/_static/training_curve.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def read_metrics(run: Path) -> tuple[list[int], list[float], list[int], list[float]]:
    """Steps and losses of the training steps, steps and AP of the evaluations."""
    steps, losses, eval_steps, aps = [], [], [], []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            steps.append(record["step"])
            losses.append(record["loss"])
        elif "eval" in record:
            eval_steps.append(record["step"])
            aps.append(record["eval"]["AP"])
    return steps, losses, eval_steps, aps


def running_mean(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="run directory of `posezoo train` (or of a Trainer)")
    parser.add_argument("--title", default=None, help="default: model and steps from summary.json")
    parser.add_argument("--window", type=int, default=20, help="running-mean window in steps")
    parser.add_argument("--out", default="docs/_static/training_curve.png")
    args = parser.parse_args(argv)

    run = Path(args.run)
    steps, losses, eval_steps, aps = read_metrics(run)
    if not steps:
        raise SystemExit(f"{run}/metrics.jsonl has no training steps")
    title = args.title
    if title is None:
        summary = run / "summary.json"
        model = json.loads(summary.read_text())["model"] if summary.is_file() else run.name
        title = f"{model}: {steps[-1]} steps"

    fig, loss_ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    loss_ax.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8)
    loss_ax.plot(steps, running_mean(losses, args.window), color="tab:blue", label=f"loss ({args.window}-step mean)")
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("training loss", color="tab:blue")
    loss_ax.set_yscale("log")
    handles = loss_ax.get_legend_handles_labels()
    if aps:
        ap_ax = loss_ax.twinx()
        ap_ax.plot(eval_steps, aps, "o-", color="tab:orange", label="val AP (COCO keypoints)")
        ap_ax.set_ylabel("AP", color="tab:orange")
        ap_ax.set_ylim(0, max(1e-3, max(aps)) * 1.15)
        more = ap_ax.get_legend_handles_labels()
        handles = (handles[0] + more[0], handles[1] + more[1])
    loss_ax.legend(*handles, loc="center right", fontsize=8)
    loss_ax.set_title(title, fontsize=10)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    ap_text = f", AP {aps[0]:.3f} -> {aps[-1]:.3f}" if aps else ""
    print(f"wrote {args.out}: {len(steps)} steps, loss {losses[0]:.4g} -> {losses[-1]:.4g}{ap_text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
