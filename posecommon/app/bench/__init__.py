"""The benchmark suite (``posezoo bench``): model speed and memory, the papers' claims, batch scaling, data
pipelines and NMS. :mod:`.suite` runs the sections and writes the report; each other module is one section."""

from .suite import BenchSettings, format_markdown, main, run_suite, write_report

__all__ = ["BenchSettings", "format_markdown", "main", "run_suite", "write_report"]
