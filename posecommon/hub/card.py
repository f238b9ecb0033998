"""Generate the ``README.md`` model card written by ``save_pretrained`` / ``push_to_hub``.

The card has a YAML header the Hub reads (library, licence, tags, metrics) and sections for the architecture,
the config, the keypoint set, preprocessing, training data, metrics, usage and the paper citation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["CITATIONS", "PAPERS", "TRANSPOSE_CITATION", "render_model_card"]

PAPERS: dict[str, str] = {
    "vttranspose": (
        "R. Li, Q. Li, S. Yang, X. Zeng and A. Yan, *An efficient and accurate 2D human pose estimation method "
        "using VTTransPose network*, Scientific Reports 14:7608 (2024)"
    ),
    "drsinet": (
        "S. Wu and B. Wang, *DRSI-Net: Dual-Residual Spatial Interaction Network for Multi-Person Pose "
        "Estimation*, Shanghai University (manuscript)"
    ),
}
"""One-line reference of each family's source paper."""

CITATIONS: dict[str, str] = {
    "vttranspose": """@article{li2024vttranspose,
  title   = {An efficient and accurate 2D human pose estimation method using VTTransPose network},
  author  = {Li, Rui and Li, Qi and Yang, Shiqiang and Zeng, Xin and Yan, An},
  journal = {Scientific Reports},
  volume  = {14},
  pages   = {7608},
  year    = {2024}
}""",
    "drsinet": """@misc{wu_drsinet,
  title  = {DRSI-Net: Dual-Residual Spatial Interaction Network for Multi-Person Pose Estimation},
  author = {Wu, Shang and Wang, Bin},
  note   = {School of Communication and Information Engineering, Shanghai University}
}""",
}
"""BibTeX entry of each family's source paper (the DRSI-Net manuscript gives no venue or year)."""

TRANSPOSE_CITATION = """@inproceedings{yang2021transpose,
  title     = {TransPose: Keypoint Localization via Transformer},
  author    = {Yang, Sen and Quan, Zhibin and Nie, Mu and Yang, Wankou},
  booktitle = {IEEE/CVF International Conference on Computer Vision (ICCV)},
  year      = {2021}
}"""
"""Extra citation for the TransPose-H-S baselines (``transpose_h_s*``), whose architecture is TransPose's."""


def _yaml_header(license: str, metrics: Mapping[str, float]) -> str:
    lines = ["---", "library_name: posezoo", f"license: {license or 'other'}", "pipeline_tag: keypoint-detection"]
    lines += ["tags:", "  - pose-estimation", "  - keypoint-detection", "  - safetensors", "  - posezoo"]
    if metrics:
        lines.append("posezoo_metrics:")
        lines += [f"  {name}: {value}" for name, value in metrics.items()]
    lines.append("---")
    return "\n".join(lines)


def _source_line(source: Mapping[str, str | None]) -> str:
    line = f"Loaded from `hf-hub:{source['repo_id']}@{source['commit']}`"
    asked = source.get("revision")
    if asked is None:
        return line + " (no revision was pinned; this is the commit `main` resolved to)."
    return line + (f" (revision `{asked}`)." if asked != source["commit"] else ".")


def render_model_card(
    config: Mapping[str, Any],
    *,
    family: str = "",
    summary: str = "",
    num_params: int | None = None,
    training_data: str = "",
    metrics: Mapping[str, float] | None = None,
    license: str = "",
    source: Mapping[str, str | None] | None = None,
    converted_from: Mapping[str, str] | None = None,
) -> str:
    """Markdown model card for a saved model.

    Args:
        config: The model's ``config_dict()`` (``model_name``, ``config``, ``keypoint_spec``, ``preprocess``).
        family: Model family (``"vttranspose"`` or ``"drsinet"``); selects the paper citation.
        summary: One-line description of the architecture (the registry summary).
        num_params: Parameter count.
        training_data: Free text describing the data the weights were trained on; ``""`` says it is not recorded.
        metrics: Measured metrics of these weights, e.g. ``{"coco_val_ap": 71.2}``; none are invented.
        license: Licence of the weights (SPDX id); ``""`` writes ``other``.
        source: The Hub weights the model was loaded from (``repo_id``, ``revision`` asked for, resolved
            ``commit``), or ``None``.
        converted_from: The official checkpoint the weights were converted from (``file``, ``sha256``,
            ``origin``), or ``None``.

    Returns:
        The card text (YAML header + Markdown).
    """
    metrics = dict(metrics or {})
    name = str(config.get("model_name", ""))
    spec = config.get("keypoint_spec", {})
    preprocess = config.get("preprocess", {})
    parts = [_yaml_header(license, metrics), "", f"# {name or 'posezoo model'}", ""]
    parts += ["## Architecture", "", f"`{name}` from [posezoo](https://pypi.org/project/posezoo/)."]
    if summary:
        parts.append(summary)
    if num_params is not None:
        parts.append(f"\nParameters: {num_params:,} ({num_params / 1e6:.2f} M).")
    if family in PAPERS:
        parts.append(f"\nPaper: {PAPERS[family]}.")
    parts += ["", "## Config", "", "```json", json.dumps(config.get("config", {}), indent=2), "```", ""]
    names = spec.get("names", [])
    parts += ["## Keypoints", "", f"{len(names)} keypoints (`{spec.get('name', '')}`): " + ", ".join(names) + ".", ""]
    if preprocess:
        size = preprocess.get("input_size", [])
        parts += [
            "## Preprocessing",
            "",
            f"Input {size[0]}x{size[1]} (HxW), `{preprocess.get('resize')}`, RGB scaled to [0, 1] then normalised "
            f"with mean {preprocess.get('mean')} and std {preprocess.get('std')}.",
            "",
        ]
    parts += ["## Training data", "", training_data or "Not recorded.", ""]
    if source:
        parts += ["## Source weights", "", _source_line(source), ""]
    if converted_from:
        parts += [
            "## Converted from",
            "",
            f"`{converted_from.get('file', '')}` (sha256 `{converted_from.get('sha256', '')}`): "
            f"{converted_from.get('origin', '')}.",
            "",
        ]
    parts += ["## Metrics", ""]
    if metrics:
        parts += ["| metric | value |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in metrics.items()]
    else:
        parts.append("No metrics recorded.")
    parts += [
        "",
        "## Usage",
        "",
        "```python",
        "from posecommon import PoseModel",
        "",
        'model = PoseModel.from_pretrained("hf-hub:<org>/<repo>")  # or a local directory',
        "```",
        "",
        "Files: `config.json` (model name, config, keypoints, preprocessing, weights sha256), `model.safetensors`.",
        "",
    ]
    citations = [CITATIONS[family]] if family in CITATIONS else []
    if name.startswith("transpose_"):
        citations.insert(0, TRANSPOSE_CITATION)
    if citations:
        parts += ["## Citation", "", "```bibtex", "\n\n".join(citations), "```", ""]
    return "\n".join(parts)
