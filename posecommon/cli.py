"""The ``posezoo`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import PosezooError

__all__ = ["main"]


def _cmd_models(args: argparse.Namespace) -> int:
    from .model_table import format_size_table, measure_sizes
    from .registry import list_models

    names = list_models(args.pattern)
    if not names:
        print("no models registered" + (f" matching {args.pattern!r}" if args.pattern else ""))
        return 0
    print(format_size_table(measure_sizes(names)))
    print("\nMACs = FLOPs / 2 from torch.utils.flop_counter (attention matmuls included); Δ = ours vs paper.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``posezoo`` (one sub-command per job)."""
    parser = argparse.ArgumentParser(prog="posezoo", description="VTTransPose and DRSI-Net human pose models.")
    sub = parser.add_subparsers(dest="command", required=True)
    models = sub.add_parser("models", help="list registered models with params and MACs beside the paper's figures")
    models.add_argument("pattern", nargs="?", default=None, help="shell-style filter, e.g. 'drsi_*'")
    models.set_defaults(func=_cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``posezoo`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PosezooError as err:
        print(f"posezoo {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
