"""VTTransPose vs TransPose-H-S (and the twin-attention ablation): the benchmark suite restricted to these models.

Thin wrapper around :mod:`posecommon.app.bench`, which measures params, MACs, latency, throughput, memory and the
twin-attention claim for every model in one run; all of its options apply.

Usage::

    python benchmarks/bench_vttranspose.py --quick --out-dir bench_results
    python benchmarks/bench_vttranspose.py --modes eager fused --batch 0 --threads 1 --clock cpu
"""

from __future__ import annotations

import sys

from posecommon.app.bench.suite import main

MODELS = ("vttranspose_h_s", "transpose_h_s_twin", "transpose_h_s")

if __name__ == "__main__":
    raise SystemExit(main(["--models", *MODELS, *sys.argv[1:]]))
