"""The posezoo benchmark suite: ``posezoo bench`` (or ``python -m posecommon.app.bench``).

One run measures, on one machine, and writes ``bench.json`` plus ``bench.md`` (a markdown report the docs include):

- **Speed and memory of every registered model** (or ``--models``): parameters, MACs
  (:func:`posecommon.count_macs`), forward latency at batch 1, throughput at ``--batch`` (32), achieved GFLOP/s
  (``2 x MACs x batch / time``) and peak forward memory at batch 1, in these modes: ``eager`` (the model as built),
  ``fused`` (``model.fuse()``: BatchNorm folded, AsymmetricConv merged), ``channels_last`` (fused, weights and input
  in channels-last layout), ``bf16`` (the channels-last model under ``torch.autocast("cpu", torch.bfloat16)``:
  convolutions and matrix products in bfloat16, normalisations and the rest in float32, the way mixed-precision
  inference runs on a GPU), ``compiled`` (``torch.compile`` of the fused model, default inductor backend; the
  compile time is reported apart) and ``onnxruntime`` (the fused ONNX export of :mod:`posecommon.export` on
  onnxruntime's CPU provider with the same thread count). Also the peak memory of one training step (eager, train
  mode, batch ``--train-batch``, sum of squared outputs as loss).
- **Baselines side by side**: ``transpose_h_s`` vs ``vttranspose_h_s`` and ``yolo_pose_s6`` vs ``drsi_net_s`` are
  timed interleaved (one call of each model per round), with ratio columns, and the issue's targets are evaluated
  from the measured numbers.
- **The papers' efficiency claims**: twin attention vs full self-attention (the official TransPose layer) as the
  token grid grows, time and peak memory of forward + backward, with the fitted growth exponent against the token
  count HW (twin: ``HW (H + W)`` elements, exponent 1.5 at a fixed aspect ratio; full: ``(HW)^2``, exponent 2);
  and the gradient norms through deep stacks of gnConv vs Res-gnConv (DRSI-Net Sec. 3.2). Each family provides its
  claim's measurement through the registry (``get_provider("claim", ...)``).
- **Batch scaling** (``--scaling-batch``, 8): per-image time at batch 8 against batch 1 of the module ``predict``
  runs (fused, channels-last on CPU), with the ratio (:mod:`posecommon.app.bench.batch`).
- **Data pipelines** (``--data``; alone unless ``--models`` is given): training samples per second of one
  single-threaded worker for the top-down and multi-person datasets (:mod:`posecommon.app.bench.data`).
- **Box NMS** at 1k / 10k / 30k candidates: time and peak memory (:mod:`posecommon.app.bench.nms`).
- **Training steps** (``--train``, instead of the rest): time and peak memory of one training step per model and
  variant, with the official code side by side when given its checkout (:mod:`posecommon.app.bench.train`).

Timing: ``--warmup`` untimed rounds, then the median of ``--repeats`` timed rounds (``--batch-repeats`` timed rounds
at the throughput batch, where one round of a large model can take minutes on a small CPU). Two clocks are recorded,
wall time and process CPU time (all threads; does not grow while the process waits for a core on a shared machine);
``--clock`` picks the one the tables and ratios use. Memory (CPU): the PyTorch profiler's allocation events of the
CPU allocator, running sum in time order, plus the bytes of parameters, buffers and inputs already resident (tensor
memory only). onnxruntime allocates outside PyTorch, so its memory is not reported.

``--quick`` runs the baseline pairs at tiny input sizes (VTTransPose 64x48, DRSI-Net 128x128) with few repeats,
batch 4 and small claim benchmarks, and leaves ``compiled`` out (inductor compiles for minutes on a small CPU); it
checks that everything runs, its numbers are not the papers' sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...measure import count_macs, count_params, peak_memory_bytes, tensor_bytes, time_round_robin
from ...registry import create_model, get_model_info, get_provider, list_models
from .batch import batch_scaling, format_batch_markdown
from .data import DataBenchSettings, data_pipeline_benchmark, format_data_markdown
from .nms import NMS_SIZES, format_nms_markdown, nms_benchmark

__all__ = [
    "MODES",
    "PAIRS",
    "BenchSettings",
    "add_bench_arguments",
    "format_markdown",
    "main",
    "run_from_args",
    "run_suite",
]

logger = logging.getLogger(__name__)

MODES = ("eager", "fused", "channels_last", "bf16", "compiled", "onnxruntime")
"""Execution modes measured for every model."""
PAIRS = (("transpose_h_s", "vttranspose_h_s"), ("yolo_pose_s6", "drsi_net_s"))
"""``(baseline, model)`` pairs timed interleaved and compared."""
QUICK_SIZES = {"vttranspose": (64, 48), "drsinet": (128, 128)}
"""Input sizes of ``--quick``, per family."""


@dataclass
class BenchSettings:
    """What one suite run measures.

    Args:
        models: Registry names; ``None`` for every registered model.
        modes: Subset of :data:`MODES`.
        sizes: Input ``(H, W)`` per family; a family not listed uses each model's ``preprocess.input_size``.
        batch: Throughput batch size (0 skips the throughput measurement).
        warmup: Untimed rounds before timing.
        repeats: Timed rounds (the median is reported).
        batch_repeats: Timed rounds at the throughput batch; ``None`` uses ``repeats``.
        clock: ``"wall"`` or ``"cpu"`` (process CPU time); the clock the tables and ratios use.
        train_batch: Batch of the training-step memory measurement (0 skips it).
        attention_grids: Token grids ``(H, W)`` of the twin vs full attention benchmark.
        attention_dim: Embedding width d of that benchmark (64 as both models).
        attention_repeats: Timed rounds of that benchmark.
        gradient_orders: Interaction orders of the gnConv vs Res-gnConv benchmark.
        gradient_depth: Blocks per stack.
        gradient_channels: Channels of the stacks.
        gradient_size: Spatial size of the stacks' input.
        gradient_weight_gain: Conv weights re-initialised ``N(0, gain^2 / fan_in)``; ``None`` keeps torch's init.
        data: The data-pipeline benchmark (:mod:`posecommon.app.bench.data`); ``None`` skips it.
        scaling_batch: Large batch of the batch-scaling section (:mod:`posecommon.app.bench.batch`); 0 skips it.
        nms_sizes: Candidate counts of the NMS benchmark (empty skips it).
        nms_repeats: Timed NMS runs per size.
    """

    models: list[str] | None = None
    modes: tuple[str, ...] = MODES
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    batch: int = 32
    warmup: int = 2
    repeats: int = 5
    batch_repeats: int | None = None
    clock: str = "wall"
    train_batch: int = 4
    attention_grids: tuple[tuple[int, int], ...] = ((32, 24), (48, 36), (64, 48), (96, 72), (128, 96))
    attention_dim: int = 64
    attention_repeats: int = 3
    gradient_orders: tuple[int, ...] = (2, 3, 4, 5, 6)
    gradient_depth: int = 24
    gradient_channels: int = 32
    gradient_size: int = 16
    gradient_weight_gain: float | None = 2.0
    data: DataBenchSettings | None = None
    scaling_batch: int = 8
    nms_sizes: tuple[int, ...] = NMS_SIZES
    nms_repeats: int = 3

    @property
    def throughput_repeats(self) -> int:
        """Timed rounds at the throughput batch: ``batch_repeats``, else ``repeats``."""
        return self.repeats if self.batch_repeats is None else self.batch_repeats

    @classmethod
    def quick(cls, **overrides: Any) -> BenchSettings:
        """Small settings that finish in about a minute on two CPU cores (see the module docstring)."""
        values: dict[str, Any] = {
            "models": [name for pair in PAIRS for name in pair],
            "modes": tuple(m for m in MODES if m != "compiled"),
            "sizes": dict(QUICK_SIZES),
            "batch": 4,
            "warmup": 1,
            "repeats": 3,
            "train_batch": 2,
            "attention_grids": ((16, 12), (24, 18), (32, 24)),
            "attention_repeats": 2,
            "gradient_orders": (2, 4),
            "gradient_depth": 8,
            "gradient_size": 8,
            "scaling_batch": 2,
            "nms_repeats": 1,
        }
        values.update(overrides)
        return cls(**values)


# ----------------------------------------------------------------------------------------------- measuring tools


# ----------------------------------------------------------------------------------------------- model speed


class _Runner:
    """One model in one mode: ``call(batch)`` runs a forward pass on a prepared input of that batch size."""

    def __init__(self, mode: str, model: nn.Module, size: tuple[int, int], threads: int, workdir: Path) -> None:
        self.mode = mode
        self.size = size
        self.compile_s: float | None = None
        self.session: Any = None
        self.module: nn.Module | None = None
        if mode == "onnxruntime":
            from ...export import export_onnx, onnx_session

            path = export_onnx(model, workdir / f"{model.model_name}.onnx", size)
            self.session = onnx_session(path, threads)
            self.feed = self.session.get_inputs()[0].name
            return
        module = model if mode == "eager" else copy.deepcopy(model).fuse()
        if mode in ("channels_last", "bf16"):
            module = module.to(memory_format=torch.channels_last)
        self.module = torch.compile(module) if mode == "compiled" else module
        self.resident = tensor_bytes(module)

    def input(self, batch: int) -> Any:
        x = torch.randn(batch, 3, *self.size, generator=torch.Generator().manual_seed(batch))
        if self.mode == "onnxruntime":
            return {self.feed: x.numpy()}
        return x.contiguous(memory_format=torch.channels_last) if self.mode in ("channels_last", "bf16") else x

    def _precision(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast in mode ``bf16`` (convolutions and matrix products in bf16, the rest in float32)."""
        if self.mode == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def bind(self, batch: int) -> Callable[[], Any]:
        """A no-argument callable running one forward at ``batch`` (the first call compiles in ``compiled``)."""
        x = self.input(batch)
        if self.session is not None:
            return lambda: self.session.run(None, x)

        def run() -> Any:
            with torch.inference_mode(), self._precision():
                return self.module(x)

        if self.mode == "compiled":
            start = time.perf_counter()
            run()
            elapsed = time.perf_counter() - start
            self.compile_s = elapsed if self.compile_s is None else self.compile_s + elapsed
        return run

    def peak_memory_mb(self) -> float | None:
        """Peak tensor memory of one batch-1 forward (after :meth:`bind` compiled it), None for onnxruntime."""
        if self.session is None:
            x = self.input(1)
            with torch.inference_mode(), self._precision():
                peak = peak_memory_bytes(lambda: self.module(x), self.resident + x.numel() * x.element_size())
            return peak / 2**20
        return None


def _input_size(name: str, model: nn.Module, settings: BenchSettings) -> tuple[int, int]:
    family = get_model_info(name).family
    return tuple(settings.sizes.get(family, model.preprocess.input_size))  # type: ignore[return-value]


def train_step_peak_mb(name: str, size: tuple[int, int], batch: int) -> float:
    """Peak tensor memory (MiB) of one training step: forward, sum of squared outputs, backward (eager, train)."""
    torch.manual_seed(0)
    model = create_model(name).train()
    x = torch.randn(batch, 3, *size)

    def step() -> None:
        out = model(x)
        outs = [out] if isinstance(out, torch.Tensor) else out
        sum(o.square().mean() for o in outs).backward()

    step()
    model.zero_grad(set_to_none=True)
    return peak_memory_bytes(step, tensor_bytes(model) + x.numel() * 4) / 2**20


def _measure_group(names: Sequence[str], settings: BenchSettings, workdir: Path) -> dict[str, dict[str, Any]]:
    """Every measurement of the models of one group; the group's models are timed interleaved."""
    threads = torch.get_num_threads()
    rows: dict[str, dict[str, Any]] = {}
    models: dict[str, nn.Module] = {}
    for name in names:
        torch.manual_seed(0)
        model = create_model(name).eval()
        size = _input_size(name, model, settings)
        with torch.device("meta"):
            meta = create_model(name)
        macs = count_macs(meta, size, device="meta").total
        rows[name] = {
            "family": get_model_info(name).family,
            "input_size": list(size),
            "params_m": count_params(meta) / 1e6,
            "macs_g": macs / 1e9,
            "modes": {},
        }
        if settings.train_batch:
            rows[name]["train_peak_mb"] = train_step_peak_mb(name, size, settings.train_batch)
            rows[name]["train_batch"] = settings.train_batch
        models[name] = model
    for mode in settings.modes:
        logger.info("timing %s in mode %s", ", ".join(names), mode)
        runners = {
            name: _Runner(mode, models[name], tuple(rows[name]["input_size"]), threads, workdir) for name in names
        }
        batches = [1] + ([settings.batch] if settings.batch else [])
        for batch in batches:
            bound = {name: runner.bind(batch) for name, runner in runners.items()}
            repeats = settings.repeats if batch == 1 else settings.throughput_repeats
            for name, times in time_round_robin(bound, settings.warmup, repeats).items():
                entry = rows[name]["modes"].setdefault(mode, {})
                ms = times[f"{settings.clock}_ms"]
                flops = 2 * rows[name]["macs_g"] * 1e9 * batch
                entry[f"b{batch}"] = {**times, "ms": ms, "images_per_s": batch * 1e3 / ms, "gflops": flops / ms / 1e6}
        for name, runner in runners.items():
            entry = rows[name]["modes"][mode]
            entry["peak_mb_b1"] = runner.peak_memory_mb()
            entry["compile_s"] = runner.compile_s
        del runners
    return rows


# ----------------------------------------------------------------------------------------------- paper claims


# ----------------------------------------------------------------------------------------------- the suite


def _ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or not den else num / den


def _pair_ratios(models: dict[str, dict[str, Any]], batch: int) -> list[dict[str, Any]]:
    """Per pair and mode: model / baseline for latency, throughput, memory, params and MACs."""
    out = []
    for base, name in PAIRS:
        if base not in models or name not in models:
            continue
        b, m = models[base], models[name]
        for mode in m["modes"]:
            if mode not in b["modes"]:
                continue
            bm, mm = b["modes"][mode], m["modes"][mode]
            out.append(
                {
                    "baseline": base,
                    "model": name,
                    "mode": mode,
                    "latency_b1": _ratio(mm["b1"]["ms"], bm["b1"]["ms"]),
                    f"throughput_b{batch}": _ratio(
                        mm.get(f"b{batch}", {}).get("images_per_s"), bm.get(f"b{batch}", {}).get("images_per_s")
                    ),
                    "peak_mb_b1": _ratio(mm["peak_mb_b1"], bm["peak_mb_b1"]),
                    "params": _ratio(m["params_m"], b["params_m"]),
                    "macs": _ratio(m["macs_g"], b["macs_g"]),
                    "train_peak": _ratio(m.get("train_peak_mb"), b.get("train_peak_mb")),
                }
            )
    return out


def _bf16_ratios(models: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """bf16 (autocast) against float32, both fused and channels-last, per model: batch-1 latency and its ratio."""
    out = []
    for name in models:
        fp32, bf16 = _latency(models, name, "channels_last"), _latency(models, name, "bf16")
        if fp32 is not None and bf16 is not None:
            out.append({"model": name, "fp32_ms": fp32, "bf16_ms": bf16, "ratio": bf16 / fp32})
    return out


def _latency(models: dict[str, dict[str, Any]], name: str, mode: str) -> float | None:
    return models.get(name, {}).get("modes", {}).get(mode, {}).get("b1", {}).get("ms")


def _targets(models: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's speed targets, evaluated from the measured batch-1 latencies (skipped when not measured)."""
    specs = [
        (
            "vttranspose_h_s fused / transpose_h_s eager latency",
            ("vttranspose_h_s", "fused"),
            ("transpose_h_s", "eager"),
            0.5,
        ),
        ("drsi_net_s fused / yolo_pose_s6 fused latency", ("drsi_net_s", "fused"), ("yolo_pose_s6", "fused"), 1.15),
    ]
    specs += [
        (f"{name} onnxruntime / eager latency", (name, "onnxruntime"), (name, "eager"), 1.0)
        for name in ("vttranspose_h_s", "transpose_h_s", "drsi_net_s", "yolo_pose_s6")
    ]
    out = []
    for label, num, den, limit in specs:
        value = _ratio(_latency(models, *num), _latency(models, *den))
        if value is not None:
            out.append({"target": label, "value": value, "limit": limit, "met": value <= limit})
    return out


def _environment(settings: BenchSettings) -> dict[str, Any]:
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "clock": settings.clock,
        "warmup": settings.warmup,
        "repeats": settings.repeats,
        "batch_repeats": settings.throughput_repeats,
        "batch": settings.batch,
    }
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        env["onnxruntime"] = None
    return env


def run_suite(settings: BenchSettings) -> dict[str, Any]:
    """Run every benchmark of ``settings``; returns the JSON-able report (see :func:`format_markdown`)."""
    unknown = sorted(set(settings.modes) - set(MODES))
    if unknown:
        raise ValueError(f"unknown modes {unknown}; choose from {MODES}")
    names = settings.models if settings.models is not None else list_models()
    groups = [[base, name] for base, name in PAIRS if base in names and name in names]
    paired = {n for g in groups for n in g}
    groups += [[name] for name in names if name not in paired]
    models: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="posezoo-bench-") as workdir:
        for group in groups:
            models.update(_measure_group(group, settings, Path(workdir)))
    report: dict[str, Any] = {
        "environment": _environment(settings),
        "settings": asdict(settings),
        "models": {name: models[name] for name in names},
        "pairs": _pair_ratios(models, settings.batch),
        "targets": _targets(models),
        "bf16": _bf16_ratios(models),
    }
    if settings.attention_grids:
        report["attention"] = get_provider("claim", "attention_scaling")(
            settings.attention_grids, settings.attention_dim, settings.attention_repeats, settings.clock
        )
    if settings.gradient_orders:
        report["gradient"] = [
            get_provider("claim", "gradient_norms")(
                kind,
                order,
                settings.gradient_depth,
                settings.gradient_channels,
                settings.gradient_size,
                weight_gain=settings.gradient_weight_gain,
            )
            for order in settings.gradient_orders
            for kind in ("gnconv", "resgnconv")
        ]
    if settings.scaling_batch and names:
        logger.info("batch scaling of %s", ", ".join(names))
        sizes = {name: models[name]["input_size"] for name in names}
        report["batch_scaling"] = batch_scaling(
            names, sizes, settings.scaling_batch, settings.warmup, settings.repeats, settings.clock
        )
    if settings.data is not None:
        report["data"] = data_pipeline_benchmark(settings.data, logger.info)
    if settings.nms_sizes:
        report["nms"] = nms_benchmark(settings.nms_sizes, repeats=settings.nms_repeats, clock=settings.clock)
    return report


# ----------------------------------------------------------------------------------------------- report


def _fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "-" if value is None else format(value, spec) + suffix


def format_markdown(report: dict[str, Any]) -> str:
    """The markdown report of :func:`run_suite`'s output (tables only; no page title)."""
    env = report["environment"]
    batch = env["batch"]
    throughput = f"b{batch} throughput" if batch else "throughput (not measured)"
    batch_repeats = env.get("batch_repeats", env["repeats"])
    rounds = f"median of {env['repeats']}"
    if batch and batch_repeats != env["repeats"]:
        rounds += f" (b{batch}: of {batch_repeats})"
    lines = [
        f"Measured with torch {env['torch']}, onnxruntime {env['onnxruntime']}, {env['threads']} CPU thread(s) "
        f"({env['cpu']}), {env['clock']} clock, {rounds} after {env['warmup']} warm-up round(s).",
    ]
    if report["models"]:
        lines += [
            "",
            f"| model | input | params (M) | GMACs | mode | b1 latency (ms) | {throughput} (img/s) "
            "| GFLOP/s (b1) | peak MB (b1) | train peak MB |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
    for name, row in report["models"].items():
        size = "x".join(str(v) for v in row["input_size"])
        for mode, entry in row["modes"].items():
            big = entry.get(f"b{batch}", {})
            lines.append(
                f"| {name} | {size} | {row['params_m']:.2f} | {row['macs_g']:.2f} | {mode} "
                f"| {entry['b1']['ms']:.1f} | {_fmt(big.get('images_per_s'), '.1f')} | {entry['b1']['gflops']:.1f} "
                f"| {_fmt(entry['peak_mb_b1'], '.0f')} | {_fmt(row.get('train_peak_mb'), '.0f')} |"
            )
    if report["pairs"]:
        lines += [
            "",
            "Model / baseline in the same run (interleaved timing):",
            "",
            f"| model / baseline | mode | latency b1 | {throughput} | peak memory b1 | train peak | params | MACs |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for p in report["pairs"]:
            lines.append(
                f"| {p['model']} / {p['baseline']} | {p['mode']} | {_fmt(p['latency_b1'], '.2f', 'x')} "
                f"| {_fmt(p[f'throughput_b{batch}'], '.2f', 'x')} | {_fmt(p['peak_mb_b1'], '.2f', 'x')} "
                f"| {_fmt(p['train_peak'], '.2f', 'x')} | {_fmt(p['params'], '.2f', 'x')} "
                f"| {_fmt(p['macs'], '.2f', 'x')} |"
            )
    if report["targets"]:
        lines += ["", "| target | measured | limit | met |", "|---|---|---|---|"]
        for t in report["targets"]:
            lines.append(f"| {t['target']} | {t['value']:.2f}x | <= {t['limit']}x | {'yes' if t['met'] else 'no'} |")
    if "attention" in report:
        att = report["attention"]
        lines += [
            "",
            f"Twin vs full attention, forward + backward, batch {att['batch']}, d = {att['dim']}:",
            "",
            "| grid | tokens | twin elements | full elements | twin ms | full ms | twin MB | full MB | memory ratio |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in att["rows"]:
            lines.append(
                f"| {r['grid'][0]}x{r['grid'][1]} | {r['tokens']} | {r['twin_elements']:,} | {r['full_elements']:,} "
                f"| {r['twin_ms']:.1f} | {r['full_ms']:.1f} | {r['twin_peak_mb']:.1f} | {r['full_peak_mb']:.1f} "
                f"| {r['memory_ratio']:.3f} |"
            )
        exp = att["exponents"]
        lines += [
            "",
            "Growth exponent against the token count HW (log-log slope): "
            f"twin elements {_fmt(exp['twin_elements'])}, time {_fmt(exp['twin_ms'])}, memory "
            f"{_fmt(exp['twin_peak_mb'])}; full elements {_fmt(exp['full_elements'])}, time {_fmt(exp['full_ms'])}, "
            f"memory {_fmt(exp['full_peak_mb'])}.",
        ]
    if "gradient" in report:
        grads = report["gradient"]
        depth = grads[0]["depth"]
        marks = sorted({0, depth // 4, depth // 2, 3 * depth // 4, depth - 1})
        lines += [
            "",
            f"Gradient norm at the input of block d / at the output, stacks of {depth} pre-norm residual blocks "
            f"(conv weight gain {grads[0]['weight_gain']}):",
            "",
            "| mixer | order | " + " | ".join(f"block {d}" for d in marks) + " | max param grad |",
            "|---|---|" + "---|" * len(marks) + "---|",
        ]
        for g in grads:
            ratios = g["input_grad_ratio_per_block"]
            lines.append(
                f"| {g['kind']} | {g['order']} | "
                + " | ".join(f"{ratios[d]:.3g}" for d in marks)
                + f" | {max(g['param_grad_norm_per_block']):.3g} |"
            )
    if report.get("bf16"):
        lines += [
            "",
            "bf16 (CPU autocast) beside float32, both fused and channels-last, batch-1 latency:",
            "",
            "| model | float32 ms | bf16 ms | bf16 / float32 |",
            "|---|---|---|---|",
        ]
        for r in report["bf16"]:
            lines.append(f"| {r['model']} | {r['fp32_ms']:.1f} | {r['bf16_ms']:.1f} | {r['ratio']:.2f}x |")
    if "batch_scaling" in report:
        lines += format_batch_markdown(report["batch_scaling"], env["clock"])
    if "data" in report:
        lines += format_data_markdown(report["data"])
    if "nms" in report:
        lines += format_nms_markdown(report["nms"])
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``bench.json`` and ``bench.md`` into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "bench.json", out / "bench.md"
    json_path.write_text(json.dumps(report, indent=1))
    md_path.write_text(format_markdown(report))
    return json_path, md_path


# ----------------------------------------------------------------------------------------------- command line


def _parse_size(text: str) -> tuple[str, tuple[int, int]]:
    family, _, size = text.partition("=")
    h, _, w = size.partition("x")
    try:
        return family, (int(h), int(w))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected FAMILY=HxW (e.g. drsinet=640x640), got {text!r}") from err


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the suite's options to ``parser`` (shared by ``python -m posecommon.app.bench`` and ``posezoo bench``)."""
    parser.add_argument(
        "--models", nargs="*", default=None, help="registry names or patterns (default: all; none given: no models)"
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=None, help="default: all (quick: no compiled)")
    parser.add_argument("--size", type=_parse_size, action="append", default=[], metavar="FAMILY=HxW")
    parser.add_argument("--batch", type=int, default=None, help="throughput batch (default 32, quick 4; 0 skips)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--batch-repeats", type=int, default=None, help="timed rounds at the throughput batch")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--train-batch", type=int, default=None, help="training-step memory batch (0 skips)")
    parser.add_argument("--no-claims", action="store_true", help="skip the attention and gradient benchmarks")
    parser.add_argument(
        "--nms-sizes", type=int, nargs="*", default=None, metavar="N", help="NMS candidate counts (none: skip NMS)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch (and onnxruntime) CPU threads")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, few repeats: about a minute")
    parser.add_argument("--out-dir", default="bench_results", help="where bench.json and bench.md are written")
    parser.add_argument(
        "--scaling-batch", type=int, default=None, help="large batch of the batch-scaling section (default 8; 0 skips)"
    )
    data = parser.add_argument_group("data pipelines (posecommon.app.bench.data)")
    data.add_argument("--data", action="store_true", help="measure the training data pipelines (alone unless --models)")
    data.add_argument("--data-ann", default=None, help="COCO keypoints file to read (default: synthetic JPEGs)")
    data.add_argument("--data-images", default=None, help="image directory of --data-ann")
    data.add_argument("--data-samples", type=int, default=None, help="samples per timed round (default 40)")
    data.add_argument("--data-rounds", type=int, default=None, help="timed rounds (default 5)")
    from .train import add_train_bench_arguments

    add_train_bench_arguments(parser)


def _data_settings(args: argparse.Namespace) -> DataBenchSettings:
    values: dict[str, Any] = {"ann_file": args.data_ann, "image_dir": args.data_images, "clock": args.clock}
    if args.data_samples is not None:
        values["samples"] = args.data_samples
    if args.data_rounds is not None:
        values["rounds"] = args.data_rounds
    return DataBenchSettings.quick(**values) if args.quick else DataBenchSettings(**values)


def run_from_args(args: argparse.Namespace) -> int:
    """Run the suite from parsed :func:`add_bench_arguments` options, print the markdown, write the files."""
    if args.train:
        from .train import run_train_from_args

        return run_train_from_args(args, QUICK_SIZES)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides: dict[str, Any] = {"clock": args.clock}
    if args.models is not None:
        overrides["models"] = sorted({n for pattern in args.models for n in list_models(pattern)})
    for key in ("modes", "batch", "warmup", "repeats", "batch_repeats", "train_batch", "scaling_batch"):
        if getattr(args, key) is not None:
            overrides[key] = tuple(args.modes) if key == "modes" else getattr(args, key)
    if args.no_claims:
        overrides.update(attention_grids=(), gradient_orders=())
    if args.data:
        overrides["data"] = _data_settings(args)
        if not args.models:  # --data alone measures the data pipelines only
            overrides.update(models=[], attention_grids=(), gradient_orders=(), nms_sizes=())
    if args.nms_sizes is not None:
        overrides["nms_sizes"] = tuple(args.nms_sizes)
    settings = BenchSettings.quick(**overrides) if args.quick else BenchSettings(**overrides)
    if args.size:
        settings.sizes = {**settings.sizes, **dict(args.size)}
    report = run_suite(settings)
    json_path, md_path = write_report(report, args.out_dir)
    print(format_markdown(report))
    print(f"wrote {json_path} and {md_path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m posecommon.app.bench``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m posecommon.app.bench", description=__doc__.split("\n\n")[0])
    add_bench_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
