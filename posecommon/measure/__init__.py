"""Measuring models: parameters and MACs (:mod:`.flops`), peak memory (:mod:`.memory`), side-by-side timing
(:mod:`.timing`), power-law fits (:mod:`.fit`) and progress reports (:mod:`.progress`). The benchmark suite, the
families' claim checks, the trainer and the evaluation use them."""

from .fit import fit_exponent
from .flops import MacReport, count_macs, count_params, sdpa_flops
from .memory import peak_memory_bytes, tensor_bytes
from .progress import Progress, format_rate, is_terminal, track
from .timing import time_round_robin

__all__ = [
    "MacReport",
    "Progress",
    "count_macs",
    "count_params",
    "fit_exponent",
    "format_rate",
    "is_terminal",
    "peak_memory_bytes",
    "sdpa_flops",
    "tensor_bytes",
    "time_round_robin",
    "track",
]
