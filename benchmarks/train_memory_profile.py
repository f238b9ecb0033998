"""Where a training step's activation memory goes: the tensors autograd keeps for backward, per module.

Runs one forward pass and the family's loss (no backward) of a registered model in train mode and records every
tensor autograd saves for backward (``torch.autograd.graph.saved_tensors_hooks``), attributing each storage once,
to the innermost module running when it was first saved (``(loss)`` outside the model; parameters are not
counted). The sum is the activation memory a step holds at the start of backward, the bulk of its peak.

The model runs with ``set_memory_lean(False)``, every intermediate kept as autograd keeps it without the
memory-lean blocks: the picture of where the memory went before them. (With them, a gated block's dense
convolution outputs are held by the recomputation's cache, which saved-tensor hooks do not see; the benchmark's
tensor peak, ``posezoo bench --train``, counts them.)

Usage::

    python benchmarks/train_memory_profile.py drsi_net_l --size 640 [--by type|block|op] [--top 30]

``--by type`` sums by module class (GELU, BatchNorm2d, Conv2d, ...) inside each block class (DRSIBlock,
ResGnConv, C3, CBAM, DRSIHead, ...); ``--by block`` by the outermost block class only; ``--by op`` lists the
module paths of one DRSI block and its Res-gnConv, to see which intermediate tensors are kept.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from posecommon.app.bench.train_worker import training_batch
from posecommon.data.synthetic import generate_synthetic_splits
from posecommon.registry import create_model

BLOCK_TYPES = ("DRSIBlock", "HorBlock", "ResGnConv", "GnConv", "C3DR", "C3", "CBAM", "SPP", "SPPF", "Focus")
"""Module classes a saved tensor is attributed to at ``--by block`` (the innermost one of these, else the
innermost module's class)."""


def saved_tensor_profile(model: nn.Module, run: Any) -> list[tuple[str, str, int]]:
    """``(module path, module class path, bytes)`` for every storage autograd saves while ``run()`` runs."""
    stack: list[tuple[str, str]] = [("(loss)", "(loss)")]
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    records: list[tuple[str, str, int]] = []
    handles = []
    for name, module in model.named_modules():
        if name:

            def pre(module: nn.Module, args: Any, name: str = name) -> None:
                parent_types = stack[-1][1] if len(stack) > 1 else ""
                stack.append((name, f"{parent_types}/{type(module).__name__}".lstrip("/")))

            def post(module: nn.Module, args: Any, output: Any) -> None:
                stack.pop()

            handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in seen and key not in params and storage.nbytes():
            seen.add(key)
            records.append((*stack[-1], storage.nbytes()))
        return tensor

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            run()
    finally:
        for handle in handles:
            handle.remove()
    return records


def _group(path: str, types: str, by: str) -> str:
    parts = types.split("/")
    if by == "type":
        blocks = [p for p in parts if p in BLOCK_TYPES]
        return f"{blocks[-1] if blocks else '(other)'} / {parts[-1]}"
    if by == "block":
        blocks = [p for p in parts if p in BLOCK_TYPES]
        return blocks[0] if blocks else (parts[1] if len(parts) > 1 else parts[0])
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--size", type=int, nargs="+", default=[640], help="input size: S or H W")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--by", choices=("type", "block", "op"), default="type")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--data", default="/tmp/posezoo-profile-data", help="synthetic data directory")
    args = parser.parse_args(argv)
    size = (args.size[0], args.size[-1])
    data = Path(args.data)
    if not (data / "annotations" / "person_keypoints_train.json").is_file():
        generate_synthetic_splits(data, 4, 1, image_size=(256, 256))
    torch.manual_seed(0)
    model = create_model(args.model, input_size=size).train()
    model.set_memory_lean(False)
    if args.grad_checkpointing:
        model.set_grad_checkpointing(True)
    task, batch = training_batch(model, data, args.batch, 0)
    records = saved_tensor_profile(model, lambda: task.loss(model, batch))
    total = sum(r[2] for r in records)
    groups: collections.Counter[str] = collections.Counter()
    for path, types, nbytes in records:
        if args.by == "op" and ".0.m.0." not in path:
            continue
        groups[_group(path, types, args.by)] += nbytes
    print(f"{args.model} at {size[0]}x{size[1]}, batch {args.batch}: {total / 2**20:.0f} MB saved for backward")
    print(f"| {'where' if args.by == 'op' else 'group'} | MB | share |\n|---|---|---|")
    for name, nbytes in groups.most_common(args.top):
        print(f"| {name} | {nbytes / 2**20:.1f} | {nbytes / total:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
