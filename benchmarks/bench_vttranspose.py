"""Efficiency claims of VTTransPose against TransPose-H-S, measured in one run on one machine.

For ``vttranspose_h_s``, ``transpose_h_s_twin`` and ``transpose_h_s`` this measures, at 256x192:

- parameters and MACs (``posecommon.flops``, models built on the meta device);
- forward latency (eval, no grad) at batch 1 and 32, unfused and after ``model.fuse()``; models are timed
  round-robin (one call of each model per round) and the median per model is reported, so drifting machine load
  affects all models alike. Two clocks are recorded: wall time and, on CPU, the process CPU time
  (``time.process_time``, all threads), which does not grow while the process waits for a core on a shared
  machine; ``--clock`` picks the one the speed-ups use (default: wall on CUDA, cpu on CPU);
- peak memory of one training step at batch 4 (forward, MSE loss against random heatmaps, backward);
- peak memory of the attention alone (forward + backward of one encoder attention, batch 4, 64x48 tokens, d=64)
  and the number of attention-matrix elements.

Memory method. CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (parameters included).
CPU: the PyTorch profiler with ``profile_memory=True`` records every allocation and free of the CPU allocator;
the running sum of those events in time order gives the peak growth during the step, to which the bytes already
allocated for parameters and buffers are added. Both count tensor memory only (no allocator caches, no framework
overhead), so CPU and CUDA numbers are comparable with each other but lower than ``nvidia-smi`` readings such as
the paper's Table 5.

Usage::

    python benchmarks/bench_vttranspose.py --quick --out bench.json
    python benchmarks/bench_vttranspose.py --device cuda --out bench_cuda.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from posecommon import count_macs, count_params, create_model
from vttranspose import TransformerEncoderLayer, TwinAttention

MODELS = ("vttranspose_h_s", "transpose_h_s_twin", "transpose_h_s")
BASELINE = "transpose_h_s"
INPUT_SIZE = (256, 192)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_bytes(fn: Callable[[], None], device: torch.device, resident_bytes: int) -> int:
    """Peak tensor memory while ``fn`` runs, including ``resident_bytes`` already allocated (see module docstring)."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        _sync(device)
        return torch.cuda.max_memory_allocated(device)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events = [e for e in events if e.device_type() == torch.autograd.DeviceType.CPU]
    running = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        running += event.nbytes()
        peak = max(peak, running)
    return resident_bytes + peak


def _tensor_bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def measure_latency(
    models: dict[str, nn.Module], batch: int, device: torch.device, warmup: int, iters: int
) -> dict[str, tuple[float, float]]:
    """Median forward latency per model as (wall ms, process CPU ms), timed round-robin."""
    x = torch.randn(batch, 3, *INPUT_SIZE, device=device)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    with torch.no_grad():
        for round_index in range(warmup + iters):
            for name, model in models.items():
                _sync(device)
                wall, cpu = time.perf_counter(), time.process_time()
                model(x)
                _sync(device)
                if round_index >= warmup:
                    times[name].append(((time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3))
    return {
        name: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts)) for name, ts in times.items()
    }


def measure_train_memory(model: nn.Module, device: torch.device, batch: int = 4) -> int:
    """Peak bytes of one training step (forward + MSE loss + backward) at ``batch``."""
    model.train()
    model.zero_grad(set_to_none=True)
    x = torch.randn(batch, 3, *INPUT_SIZE, device=device)
    target = torch.rand(batch, model.config.num_joints, INPUT_SIZE[0] // 4, INPUT_SIZE[1] // 4, device=device)

    def step() -> None:
        loss = nn.functional.mse_loss(model(x), target)
        loss.backward()

    step()  # warm up allocator and kernels
    model.zero_grad(set_to_none=True)
    resident = _tensor_bytes(model) + x.numel() * 4 + target.numel() * 4
    peak = peak_memory_bytes(step, device, resident)
    model.zero_grad(set_to_none=True)
    return peak


def measure_attention_memory(kind: str, device: torch.device, batch: int = 4, dim: int = 64) -> dict[str, float]:
    """Peak bytes of one attention (forward + backward, train mode) over 64x48 tokens, and its matrix elements."""
    h, w = INPUT_SIZE[0] // 4, INPUT_SIZE[1] // 4
    if kind == "twin":
        attn: nn.Module = TwinAttention(dim, 1, dropout=0.1).to(device).train()
        x = torch.randn(batch, dim, h, w, device=device, requires_grad=True)

        def run() -> None:
            attn(x).sum().backward()

        elements = w * h * h + h * w * w
    else:
        layer = TransformerEncoderLayer(dim, 1, 128, 0.1).to(device).train()
        attn = layer.self_attn
        x = torch.randn(h * w, batch, dim, device=device, requires_grad=True)

        def run() -> None:
            attn(x, x, value=x)[0].sum().backward()  # called exactly as the official layer calls it

        elements = (h * w) ** 2
    run()
    resident = _tensor_bytes(attn) + x.numel() * 4
    peak = peak_memory_bytes(run, device, resident)
    return {"attention_peak_mb": peak / 2**20, "attention_matrix_elements": elements}


def _store_latency(row: dict[str, float], prefix: str, batch: int, times: tuple[float, float], clock: str) -> None:
    wall, cpu = times
    row[f"{prefix}wall_latency_b{batch}_ms"] = wall
    row[f"{prefix}cpu_latency_b{batch}_ms"] = cpu
    row[f"{prefix}latency_b{batch}_ms"] = wall if clock == "wall" else cpu


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="fewer timing rounds (1 warm-up, 2 timed)")
    parser.add_argument("--iters", type=int, default=None, help="timed rounds (default 5, or 2 with --quick)")
    parser.add_argument("--large-batch", type=int, default=32, help="the large latency batch")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on CPU")
    parser.add_argument("--clock", choices=("wall", "cpu"), default=None, help="clock for the latency columns")
    parser.add_argument("--out", default=None, help="write the results as JSON to this path")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    iters = args.iters or (2 if args.quick else 5)
    warmup = 1 if args.quick else 2
    clock = args.clock or ("wall" if device.type == "cuda" else "cpu")
    torch.manual_seed(0)

    results: dict[str, dict[str, float]] = {name: {} for name in MODELS}
    for name in MODELS:
        with torch.device("meta"):
            meta_model = create_model(name)
        results[name]["params_m"] = count_params(meta_model) / 1e6
        results[name]["macs_g"] = count_macs(meta_model, INPUT_SIZE, device="meta").giga

    models = {name: create_model(name).to(device).eval() for name in MODELS}
    for batch in (1, args.large_batch):
        for name, times in measure_latency(models, batch, device, warmup, iters).items():
            _store_latency(results[name], "", batch, times, clock)
    for name, model in models.items():
        results[name]["train_peak_b4_mb"] = measure_train_memory(model, device) / 2**20
        kind = "full" if model.config.attention == "full" else "twin"
        results[name].update(measure_attention_memory(kind, device))
    fused = {name: model.eval().fuse() for name, model in models.items()}
    for batch in (1, args.large_batch):
        for name, times in measure_latency(fused, batch, device, warmup, iters).items():
            _store_latency(results[name], "fused_", batch, times, clock)

    base = results[BASELINE]
    for row in results.values():
        for key in ("latency_b1_ms", f"latency_b{args.large_batch}_ms"):
            row[f"speedup_{key.removesuffix('_ms')}"] = base[key] / row[key]
        for key in ("train_peak_b4_mb", "attention_peak_mb", "attention_matrix_elements", "params_m", "macs_g"):
            row[f"ratio_{key}"] = row[key] / base[key]
        for batch in (1, args.large_batch):
            row[f"fuse_speedup_b{batch}"] = row[f"latency_b{batch}_ms"] / row[f"fused_latency_b{batch}_ms"]

    report = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "input_size": list(INPUT_SIZE),
        "timed_rounds": iters,
        "latency_clock": clock,
        "memory_method": "cuda.max_memory_allocated" if device.type == "cuda" else "profiler CPU allocation events",
        "results": results,
    }
    print(f"latency clock: {clock}; memory: {report['memory_method']}")
    print(format_table(results, args.large_batch))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(report, handle, indent=2)
    return report


def format_table(results: dict[str, dict[str, float]], large_batch: int) -> str:
    """Markdown table; ratios are against ``transpose_h_s`` (speed-up = baseline time / model time)."""
    lb = large_batch
    lines = [
        f"| model | params (M) | GMACs | b1 ms (speed-up) | b{lb} ms (speed-up) | train peak b4 MB (ratio) "
        f"| attention MB (ratio) | fused b1 ms | fused b{lb} ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['params_m']:.2f} | {r['macs_g']:.2f} "
            f"| {r['latency_b1_ms']:.1f} ({r['speedup_latency_b1']:.2f}x) "
            f"| {r[f'latency_b{lb}_ms']:.0f} ({r[f'speedup_latency_b{lb}']:.2f}x) "
            f"| {r['train_peak_b4_mb']:.0f} ({r['ratio_train_peak_b4_mb']:.2f}) "
            f"| {r['attention_peak_mb']:.1f} ({r['ratio_attention_peak_mb']:.3f}) "
            f"| {r['fused_latency_b1_ms']:.1f} | {r[f'fused_latency_b{lb}_ms']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
