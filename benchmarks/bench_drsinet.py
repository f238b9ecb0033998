"""DRSI-Net-s vs the same-width YOLO-Pose baseline: forward latency and training-step peak memory, in one run.

Latency: eval mode, batch 1, ``--size`` (default 640), median of ``--iters`` timed forwards after warm-up, in four
modes (unfused and BN-fused, each NCHW and ``channels_last``). All eight (model, mode) pairs are timed interleaved
in one loop so load from other processes affects them alike; wall time and process CPU time are both reported.

Memory: one training step (forward, sum of squared outputs, backward, SGD step) at
``--train-batch`` x ``--train-size``. On CUDA the allocator's peak above the idle baseline is reported; on CPU,
where no allocator peak is exposed, the bytes autograd saves for backward (counted through
``torch.autograd.graph.saved_tensors_hooks``), which dominate a training step's peak.
The target (docs/benchmarks.md) is DRSI-Net-s latency <= 1.15x the baseline's.

Usage::

    python benchmarks/bench_drsinet.py --quick                   # CPU smoke run (small sizes, few iterations)
    python benchmarks/bench_drsinet.py --device cuda --out bench.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time

import torch

from posecommon import create_model

logger = logging.getLogger("bench_drsinet")

MODELS = ("drsi_net_s", "yolo_pose_s6")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


MODES = ("eager", "fused", "eager_cl", "fused_cl")
"""Latency modes: unfused / BN-fused (``model.fuse()``), each in NCHW and ``channels_last`` memory format."""


def build(name: str, mode: str, device: torch.device, half: bool) -> torch.nn.Module:
    """``name`` in eval mode, fused and/or converted to ``channels_last`` as ``mode`` says."""
    torch.manual_seed(0)
    model = create_model(name).to(device).eval()
    if half:
        model = model.half()
    if mode.startswith("fused"):
        model.fuse()
    if mode.endswith("_cl"):
        model = model.to(memory_format=torch.channels_last)
    return model


def forward_latency_ms(
    names: tuple[str, ...], modes: tuple[str, ...], size: int, device: torch.device, iters: int, warmup: int, half: bool
) -> dict[tuple[str, str], dict[str, float]]:
    """Median batch-1 forward latency (wall and process CPU time, ms) of every (model, mode).

    All models are built first and timed interleaved (one forward of each in turn, ``iters`` rounds), so that load
    from other processes on a shared machine affects all of them alike.
    """
    x = torch.rand(1, 3, size, size, device=device)
    if half:
        x = x.half()
    runs = {}
    for name in names:
        for mode in modes:
            xi = x.contiguous(memory_format=torch.channels_last) if mode.endswith("_cl") else x
            runs[(name, mode)] = (build(name, mode, device, half), xi)
    wall: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
    cpu: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
    with torch.inference_mode():
        for model, xi in runs.values():
            for _ in range(warmup):
                model(xi)
        _sync(device)
        for _ in range(iters):
            for key, (model, xi) in runs.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                model(xi)
                _sync(device)
                wall[key].append((time.perf_counter() - start) * 1e3)
                cpu[key].append((time.process_time() - start_cpu) * 1e3)
    return {key: {"wall_ms": statistics.median(wall[key]), "cpu_ms": statistics.median(cpu[key])} for key in runs}


def train_step_memory_mb(name: str, size: int, batch: int, device: torch.device) -> float:
    """Peak memory of one training step in MiB (CUDA: allocator peak; CPU: bytes saved for backward)."""
    torch.manual_seed(0)
    model = create_model(name).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.937)
    x = torch.rand(batch, 3, size, size, device=device)
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        loss = sum(o.float().square().mean() for o in model(x))
        loss.backward()
        optimizer.step()
        _sync(device)
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = sum(o.square().mean() for o in model(x))
        loss.backward()
        optimizer.step()
        peak = saved[0]
    del model, optimizer, x, loss
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return peak / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=640, help="latency input size (square)")
    parser.add_argument("--iters", type=int, default=15, help="timed rounds (median reported)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=640)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--half", action="store_true", help="fp16 latency on CUDA")
    parser.add_argument("--quick", action="store_true", help="CPU-friendly: 256 px latency, 3 iters, batch 2 x 256")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.iters, args.warmup, args.train_size, args.train_batch = 256, 3, 1, 256, 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    latency = forward_latency_ms(MODELS, MODES, args.size, device, args.iters, args.warmup, args.half)
    results: dict[str, dict[str, float]] = {}
    for name in MODELS:
        results[name] = {f"latency_{mode}_ms": latency[(name, mode)]["wall_ms"] for mode in MODES}
        results[name].update({f"cpu_{mode}_ms": latency[(name, mode)]["cpu_ms"] for mode in MODES})
        results[name]["train_memory_mb"] = train_step_memory_mb(name, args.train_size, args.train_batch, device)
        logger.info(
            "%-13s latency ms (wall / process CPU): %s; train-step memory %.1f MiB",
            name,
            ", ".join(
                f"{mode} {results[name][f'latency_{mode}_ms']:.1f} / {results[name][f'cpu_{mode}_ms']:.1f}"
                for mode in MODES
            ),
            results[name]["train_memory_mb"],
        )
    drsi, base = results["drsi_net_s"], results["yolo_pose_s6"]
    ratios = {f"latency_{mode}": drsi[f"latency_{mode}_ms"] / base[f"latency_{mode}_ms"] for mode in MODES}
    ratios.update({f"cpu_{mode}": drsi[f"cpu_{mode}_ms"] / base[f"cpu_{mode}_ms"] for mode in MODES})
    ratios["train_memory"] = drsi["train_memory_mb"] / base["train_memory_mb"]
    for mode in MODES:
        logger.info(
            "ratio drsi_net_s / yolo_pose_s6 %-8s: latency %.3f (process CPU %.3f), target <= 1.15",
            mode,
            ratios[f"latency_{mode}"],
            ratios[f"cpu_{mode}"],
        )
    logger.info("ratio drsi_net_s / yolo_pose_s6 train-step memory %.3f", ratios["train_memory"])
    if args.out:
        meta = {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "meta": meta, "results": results, "ratios": ratios}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
