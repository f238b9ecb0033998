"""DRSI-Net-s vs the same-width YOLO-Pose baseline: forward latency and training-step peak memory, in one run.

Latency: eval mode, batch 1, ``--size`` (default 640), median of ``--iters`` timed forwards after warm-up, both
unfused and BN-fused. Memory: one training step (forward, sum of squared outputs, backward, SGD step) at
``--train-batch`` x ``--train-size``. On CUDA the allocator's peak above the idle baseline is reported; on CPU,
where no allocator peak is exposed, the bytes autograd saves for backward (counted through
``torch.autograd.graph.saved_tensors_hooks``), which dominate a training step's peak.
The target (SPEC.md) is DRSI-Net-s latency <= 1.15x the baseline's.

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


def forward_latency_ms(
    model: torch.nn.Module, size: int, device: torch.device, iters: int, warmup: int, half: bool
) -> float:
    """Median forward latency in milliseconds at batch 1."""
    x = torch.rand(1, 3, size, size, device=device)
    if half:
        x = x.half()
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        _sync(device)
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            model(x)
            _sync(device)
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


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
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=640)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--half", action="store_true", help="fp16 latency on CUDA")
    parser.add_argument("--quick", action="store_true", help="CPU-friendly: 256 px latency, 3 iters, batch 2 x 256")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
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
    results: dict[str, dict[str, float]] = {}
    for name in MODELS:
        torch.manual_seed(0)
        model = create_model(name).to(device).eval()
        if args.half:
            model = model.half()
        unfused = forward_latency_ms(model, args.size, device, args.iters, args.warmup, args.half)
        model.fuse()
        fused = forward_latency_ms(model, args.size, device, args.iters, args.warmup, args.half)
        del model
        memory = train_step_memory_mb(name, args.train_size, args.train_batch, device)
        results[name] = {"latency_ms": unfused, "latency_fused_ms": fused, "train_memory_mb": memory}
        logger.info("%-13s latency %8.2f ms  fused %8.2f ms  train-step memory %9.1f MiB", name, unfused, fused, memory)
    drsi, base = results["drsi_net_s"], results["yolo_pose_s6"]
    ratios = {
        "latency": drsi["latency_ms"] / base["latency_ms"],
        "latency_fused": drsi["latency_fused_ms"] / base["latency_fused_ms"],
        "train_memory": drsi["train_memory_mb"] / base["train_memory_mb"],
    }
    logger.info(
        "ratio drsi_net_s / yolo_pose_s6: latency %.3f (fused %.3f, target <= 1.15), train memory %.3f",
        ratios["latency"],
        ratios["latency_fused"],
        ratios["train_memory"],
    )
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
