"""Measuring models: parameters and MACs (:mod:`.flops`), peak memory (:mod:`.memory`), side-by-side timing
(:mod:`.timing`) and power-law fits (:mod:`.fit`). The benchmark suite and the families' claim checks use them."""

from .fit import fit_exponent
from .flops import MacReport, count_macs, count_params, sdpa_flops
from .memory import peak_memory_bytes, tensor_bytes
from .timing import time_round_robin

__all__ = [
    "MacReport",
    "count_macs",
    "count_params",
    "fit_exponent",
    "peak_memory_bytes",
    "sdpa_flops",
    "tensor_bytes",
    "time_round_robin",
]
