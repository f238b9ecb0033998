"""Training-step benchmark: time and peak memory of one training step per model, beside the official code.

``posezoo bench --train`` (or :func:`run_train_bench`) measures, for every selected registered model and training
variant, one training step (forward, the family's loss, backward, optimiser step) at a given input size and batch:

- **memory**, each arm in a fresh process (:mod:`posecommon.app.bench.train_worker`): the peak resident-set growth of
  the process's first step (what the operating system sees: activations, gradients, optimiser state, allocator
  overhead) and the peak of live tensor bytes of a later step (the allocator's view, which is what a CUDA caching
  allocator would have to hold: activations, gradients and temporaries; the optimiser state already exists);
- **time**, in interleaved rounds (one step of every arm per round, the arms' processes alive side by side), the
  median seconds of forward + loss, backward and optimiser step.

Variants (:data:`VARIANTS`): ``eager``, ``channels_last`` (weights and input in channels-last memory), ``compile``
(``torch.compile`` of the model; forward and backward graphs compiled, loss and optimiser eager), ``bf16``
(bfloat16 autocast), ``grad_checkpointing`` (``model.set_grad_checkpointing()``) and ``no_memory_lean``
(``model.set_memory_lean(False)``: every intermediate kept for backward, as before the memory-lean blocks).

Given an official checkout (``--official-yolopose DIR``: TexasInstruments/edgeai-yolov5, branch ``yolo-pose``;
``--official-transpose DIR``: yangsenius/TransPose), the official counterparts of the selected models
(:data:`OFFICIAL_COUNTERPARTS`) run as further arms in the same run, on the same images and targets, with the
official loss and optimiser; the report gives each posezoo arm's ratios to its counterpart. The official code runs
only inside its worker process (``--official-python`` names an interpreter that has its requirements).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...errors import InvalidInputError
from ...registry import create_model, get_model_info, list_models

__all__ = [
    "DEFAULT_SIZES",
    "OFFICIAL_COUNTERPARTS",
    "VARIANTS",
    "TrainBenchSettings",
    "add_train_bench_arguments",
    "format_train_markdown",
    "run_train_bench",
    "run_train_from_args",
]

logger = logging.getLogger(__name__)

VARIANTS = ("eager", "channels_last", "compile", "bf16", "grad_checkpointing", "no_memory_lean")
"""Training variants a posezoo arm can run in (see the module docstring)."""
DEFAULT_SIZES = {"drsinet": (640, 640), "vttranspose": (256, 192)}
"""Input ``(H, W)`` per family when none is given."""
OFFICIAL_COUNTERPARTS: dict[str, tuple[str, str]] = {
    "yolo_pose_s6": ("official_yolopose", "yolov5s6_kpts"),
    "drsi_net_s": ("official_yolopose", "yolov5s6_kpts"),
    "drsi_net_m": ("official_yolopose", "yolov5m6_kpts"),
    "drsi_net_l": ("official_yolopose", "yolov5l6_kpts"),
    "transpose_h_s": ("official_transpose", "TP_H_w32_256x192_stage3_1_4_d64_h128_relu_enc4_mh1"),
    "vttranspose_h_s": ("official_transpose", "TP_H_w32_256x192_stage3_1_4_d64_h128_relu_enc4_mh1"),
    "transpose_h_s_twin": ("official_transpose", "TP_H_w32_256x192_stage3_1_4_d64_h128_relu_enc4_mh1"),
}
"""Registry name -> (official arm kind, official model): YOLO-Pose s6 / m6 / l6 with the ``dw_conv_kpt`` head
(DRSI-Net's Table-1 baselines; ``models/hub/<name>.yaml``) and TransPose-H-S (``experiments/coco/transpose_h``)."""
_PAIRED_MODEL = {"official_yolopose": "yolo_pose_s6", "official_transpose": "transpose_h_s"}
"""The posezoo model whose training dataset makes the official arms' batch (same images, same targets)."""


@dataclass
class TrainBenchSettings:
    """What one training benchmark measures.

    Args:
        models: Registry names; ``None`` for every registered model.
        sizes: Input ``(H, W)`` per family (:data:`DEFAULT_SIZES` for the others).
        batch: Images per step.
        variants: Subset of :data:`VARIANTS`; every model runs in each.
        threads: torch threads of every worker (None: torch's default in the worker).
        warmup: Untimed rounds (after the memory steps).
        repeats: Timed rounds (medians are reported); 0 measures memory only.
        optimizer_step: Include the optimiser step (the model's recipe optimiser; the official code's for the
            official arms).
        official_yolopose: Path of a checkout of TexasInstruments/edgeai-yolov5, branch ``yolo-pose``.
        official_transpose: Path of a checkout of yangsenius/TransPose.
        official_python: Interpreter of the official arms (default: this one).
        seed: Seed of the synthetic data, the batch and the initial weights.
        timeout_s: Longest wait for one reply of a worker (building, one step, ...).
    """

    models: list[str] | None = None
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    batch: int = 1
    variants: tuple[str, ...] = ("eager",)
    threads: int | None = None
    warmup: int = 1
    repeats: int = 3
    optimizer_step: bool = True
    official_yolopose: str | None = None
    official_transpose: str | None = None
    official_python: str | None = None
    seed: int = 0
    timeout_s: float = 1800.0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown or not self.variants:
            raise InvalidInputError(f"unknown training variants {unknown}; choose from {', '.join(VARIANTS)}")
        if self.batch < 1 or self.repeats < 0 or self.warmup < 0:
            raise InvalidInputError("batch >= 1, repeats >= 0 and warmup >= 0 are needed")
        for option, path in (("yolopose", self.official_yolopose), ("transpose", self.official_transpose)):
            if path is not None and not Path(path).is_dir():
                raise InvalidInputError(f"--official-{option} {path} is not a directory (see docs/benchmarks.md)")


# ----------------------------------------------------------------------------------------------- arms


@dataclass(frozen=True)
class _Arm:
    label: str
    kind: str
    name: str
    family: str
    size: tuple[int, int]
    variant: str = "eager"
    source_dir: str | None = None


def _size(family: str, settings: TrainBenchSettings) -> tuple[int, int]:
    return tuple(settings.sizes.get(family, DEFAULT_SIZES.get(family, (256, 256))))  # type: ignore[return-value]


def _arms(settings: TrainBenchSettings) -> list[_Arm]:
    names = settings.models if settings.models is not None else list_models()
    arms: list[_Arm] = []
    official: dict[tuple[str, str], _Arm] = {}
    sources = {"official_yolopose": settings.official_yolopose, "official_transpose": settings.official_transpose}
    for name in names:
        family = get_model_info(name).family
        size = _size(family, settings)
        for variant in settings.variants:
            label = name if variant == "eager" else f"{name} [{variant}]"
            arms.append(_Arm(label, "posezoo", name, family, size, variant))
        kind, official_name = OFFICIAL_COUNTERPARTS.get(name, ("", ""))
        if sources.get(kind) and (kind, official_name) not in official:
            official[(kind, official_name)] = _Arm(
                f"official {official_name}", kind, official_name, family, size, source_dir=sources[kind]
            )
    return list(official.values()) + arms


# ----------------------------------------------------------------------------------------------- workers


class _Worker:
    """One arm's process: started with its spec, answers one request at a time (with a deadline)."""

    def __init__(self, arm: _Arm, spec: dict[str, Any], python: str, log_dir: Path, timeout_s: float) -> None:
        self.arm = arm
        self.timeout_s = timeout_s
        self.log_path = log_dir / f"worker-{abs(hash(arm.label))}.log"
        script = Path(__file__).with_name("train_worker.py")
        command = [python, str(script), json.dumps(spec)]
        env = dict(os.environ)
        if arm.kind == "posezoo":
            command = [python, "-m", "posecommon.app.bench.train_worker", json.dumps(spec)]
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env, cwd=log_dir
        )
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        from .train_worker import REPLY_PREFIX

        assert self.process.stdout is not None
        deadline = time.monotonic() + self.timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    self.close()
                    raise TimeoutError(f"{self.arm.label}: no reply within {self.timeout_s:.0f} s ({self.log_path})")
                line = self.process.stdout.readline().decode(errors="replace")
                if not line:
                    self.close()
                    raise RuntimeError(f"{self.arm.label}: the worker exited; its log ends: {self._tail()}")
                if line.startswith(REPLY_PREFIX):
                    reply = json.loads(line[len(REPLY_PREFIX) :])
                    if "error" in reply:
                        self.close()
                        raise RuntimeError(f"{self.arm.label}: {reply['error']}; its log ends: {self._tail()}")
                    return reply

    def _tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def request(self, what: str) -> dict[str, Any]:
        """Send one request (``memory``, ``profile``, ``step``) and wait for its reply."""
        assert self.process.stdin is not None
        self.process.stdin.write((what + "\n").encode())
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        """Ask the worker to quit; kill it when it does not within 30 s."""
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write(b"quit\n")
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self._log.close()


# ----------------------------------------------------------------------------------------------- the benchmark


def _prepare_data(arms: Sequence[_Arm], settings: TrainBenchSettings, workdir: Path) -> dict[str, Path]:
    """Synthetic data for every arm, and the batch files of the official arms (from the paired posezoo model)."""
    from ...data.synthetic import generate_synthetic_splits
    from .train_worker import training_batch

    data_root = workdir / "data"
    generate_synthetic_splits(data_root, max(settings.batch, 4), 1, seed=settings.seed, image_size=(256, 256))
    batch_files = {}
    for kind in sorted({arm.kind for arm in arms if arm.kind != "posezoo"}):
        size = next(arm.size for arm in arms if arm.kind == kind)
        with torch.device("meta"):
            model = create_model(_PAIRED_MODEL[kind], input_size=size)
        _, batch = training_batch(model, data_root, settings.batch, settings.seed)
        path = workdir / f"batch-{kind}.pt"
        torch.save({k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}, path)
        batch_files[kind] = path
    return {"data_root": data_root, **batch_files}


def _spec(arm: _Arm, settings: TrainBenchSettings, paths: dict[str, Path]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "kind": arm.kind,
        "name": arm.name,
        "size": list(arm.size),
        "batch": settings.batch,
        "threads": settings.threads,
        "seed": settings.seed,
        "optimizer_step": settings.optimizer_step,
        "variant": arm.variant,
        "data_root": str(paths["data_root"]),
    }
    if arm.kind != "posezoo":
        spec |= {"source_dir": str(Path(arm.source_dir or "").resolve()), "batch_file": str(paths[arm.kind])}
    return spec


def _median_times(samples: list[dict[str, float]]) -> dict[str, float]:
    keys = ("forward_loss_s", "backward_s", "optimizer_s", "total_s", "cpu_s")
    times = {k: statistics.median(s[k] for s in samples) for k in keys}
    times["forward_backward_s"] = statistics.median(s["forward_loss_s"] + s["backward_s"] for s in samples)
    return times


def run_train_bench(settings: TrainBenchSettings) -> dict[str, Any]:
    """Measure every arm of ``settings``; returns the JSON-able report (see :func:`format_train_markdown`)."""
    arms = _arms(settings)
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="posezoo-bench-train-") as tmp:
        workdir = Path(tmp)
        paths = _prepare_data(arms, settings, workdir)
        workers: list[_Worker] = []
        try:
            for arm in arms:
                python = settings.official_python if arm.kind != "posezoo" and settings.official_python else None
                logger.info("building %s", arm.label)
                spec = _spec(arm, settings, paths)
                worker = _Worker(arm, spec, python or sys.executable, workdir, settings.timeout_s)
                workers.append(worker)
                memory = worker.request("memory")["rss_growth_bytes"]
                tensor_peak = worker.request("profile")["tensor_peak_bytes"]
                rows[arm.label] = {
                    "kind": arm.kind,
                    "model": arm.name,
                    "family": arm.family,
                    "variant": arm.variant,
                    "input_size": list(arm.size),
                    "params_m": worker.ready["info"]["params"] / 1e6,
                    "threads": worker.ready["threads"],
                    "rss_growth_mb": None if memory is None else memory / 2**20,
                    "tensor_peak_mb": tensor_peak / 2**20,
                }
                logger.info("%s: peak memory growth %s MB", arm.label, rows[arm.label]["rss_growth_mb"])
            samples: dict[str, list[dict[str, float]]] = {w.arm.label: [] for w in workers}
            for round_index in range(settings.warmup + settings.repeats if settings.repeats else 0):
                for worker in workers:
                    times = worker.request("step")["times"]
                    if round_index >= settings.warmup:
                        samples[worker.arm.label].append(times)
            for label, arm_samples in samples.items():
                rows[label]["times"] = _median_times(arm_samples) if arm_samples else None
                rows[label]["rounds"] = len(arm_samples)
        finally:
            for worker in workers:
                worker.close()
    return {
        "environment": {
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
        },
        "settings": asdict(settings),
        "arms": rows,
        "ratios": _ratios(rows),
    }


def _ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or not den else num / den


def _ratios(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each posezoo arm against its official counterpart and, for a variant, against the same model's eager arm."""
    out = []
    for label, row in rows.items():
        if row["kind"] != "posezoo":
            continue
        references = []
        counterpart = OFFICIAL_COUNTERPARTS.get(row["model"])
        if counterpart and f"official {counterpart[1]}" in rows:
            references.append(f"official {counterpart[1]}")
        if row["variant"] != "eager" and row["model"] in rows:
            references.append(row["model"])
        for reference in references:
            ref = rows[reference]
            timed = row["times"] is not None and ref["times"] is not None
            row_t, ref_t = (row["times"], ref["times"]) if timed else ({}, {})
            out.append(
                {
                    "arm": label,
                    "reference": reference,
                    "rss_growth": _ratio(row["rss_growth_mb"], ref["rss_growth_mb"]),
                    "tensor_peak": _ratio(row["tensor_peak_mb"], ref["tensor_peak_mb"]),
                    "forward_backward": _ratio(row_t.get("forward_backward_s"), ref_t.get("forward_backward_s")),
                    "step": _ratio(row_t.get("total_s"), ref_t.get("total_s")),
                    "step_cpu": _ratio(row_t.get("cpu_s"), ref_t.get("cpu_s")),
                }
            )
    return out


def _fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "-" if value is None else format(value, spec) + suffix


def format_train_markdown(report: dict[str, Any]) -> str:
    """The markdown tables of :func:`run_train_bench`'s report (no page title)."""
    settings, env = report["settings"], report["environment"]
    threads = sorted({row["threads"] for row in report["arms"].values()})
    step = "forward, loss, backward, optimiser step" if settings["optimizer_step"] else "forward, loss, backward"
    lines = [
        f"Training step ({step}), batch {settings['batch']}, torch {env['torch']}, "
        f"{'/'.join(map(str, threads))} thread(s) per worker ({env['cpu']}); memory: each arm in a fresh process; "
        f"time: median of {settings['repeats']} interleaved round(s) after {settings['warmup']} warm-up round(s).",
        "",
        "| arm | input | params (M) | peak RSS growth, step 1 (MB) | peak tensor memory (MB) | forward + loss (s) "
        "| backward (s) | optimiser (s) | step (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, row in report["arms"].items():
        t = row["times"] or {}
        times = " | ".join(_fmt(t.get(k), ".3f") for k in ("forward_loss_s", "backward_s", "optimizer_s", "total_s"))
        lines.append(
            f"| {label} | {'x'.join(map(str, row['input_size']))} | {row['params_m']:.2f} "
            f"| {_fmt(row['rss_growth_mb'], '.0f')} | {row['tensor_peak_mb']:.0f} | {times} |"
        )
    if report["ratios"]:
        lines += [
            "",
            "| arm / reference | peak RSS growth | peak tensor memory | forward + loss + backward | step "
            "| step (CPU time) |",
            "|---|---|---|---|---|---|",
        ]
        for r in report["ratios"]:
            lines.append(
                f"| {r['arm']} / {r['reference']} | {_fmt(r['rss_growth'], '.2f', 'x')} "
                f"| {_fmt(r['tensor_peak'], '.2f', 'x')} | {_fmt(r['forward_backward'], '.2f', 'x')} "
                f"| {_fmt(r['step'], '.2f', 'x')} | {_fmt(r['step_cpu'], '.2f', 'x')} |"
            )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- command line


def add_train_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``posezoo bench --train`` (``--models``, ``--size``, ``--warmup``, ``--repeats``,
    ``--threads``, ``--train-batch`` and ``--out-dir`` are the suite's own)."""
    group = parser.add_argument_group("training step (posecommon.app.bench.train)")
    group.add_argument("--train", action="store_true", help="benchmark training steps (time and peak memory) instead")
    group.add_argument(
        "--train-variants", nargs="+", choices=VARIANTS, default=None, metavar="VARIANT", help="default: eager"
    )
    group.add_argument("--no-optimizer-step", action="store_true", help="time forward, loss and backward only")
    group.add_argument("--official-yolopose", default=None, metavar="DIR", help="edgeai-yolov5 checkout (yolo-pose)")
    group.add_argument("--official-transpose", default=None, metavar="DIR", help="yangsenius/TransPose checkout")
    group.add_argument("--official-python", default=None, metavar="PATH", help="interpreter of the official arms")


def run_train_from_args(args: argparse.Namespace, quick_sizes: dict[str, tuple[int, int]]) -> int:
    """Run the training benchmark from the parsed ``posezoo bench`` options; print and write the report.

    ``quick_sizes`` are the input sizes of ``--quick`` per family (the suite's).
    """
    values: dict[str, Any] = {
        "official_yolopose": args.official_yolopose,
        "official_transpose": args.official_transpose,
        "official_python": args.official_python,
        "optimizer_step": not args.no_optimizer_step,
        "threads": args.threads,
        "sizes": dict(args.size),
    }
    if args.models is not None:
        values["models"] = sorted({n for pattern in args.models for n in list_models(pattern)})
    if args.quick:  # tiny inputs, one round: checks that everything runs
        values |= {"sizes": {**quick_sizes, **values["sizes"]}, "warmup": 0, "repeats": 1}
    if args.train_variants:
        values["variants"] = tuple(args.train_variants)
    for key, attr in (("batch", "train_batch"), ("warmup", "warmup"), ("repeats", "repeats")):
        if getattr(args, attr) is not None:
            values[key] = getattr(args, attr)
    report = run_train_bench(TrainBenchSettings(**values))
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_train.json").write_text(json.dumps(report, indent=1))
    text = format_train_markdown(report)
    (out / "bench_train.md").write_text(text)
    print(text)
    print(f"wrote {out / 'bench_train.json'} and {out / 'bench_train.md'}")
    return 0
