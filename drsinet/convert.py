"""Convert the official YOLO-Pose checkpoints into ``yolo_pose_s6/m6/l6`` without executing anything in them.

The released YOLO-Pose files (TexasInstruments/edgeai-yolov5, branch ``yolo-pose``, ``README.md:59-62``) are
``torch.save`` pickles of a dict whose ``model`` and ``ema`` entries are whole ``models.yolo.Model`` objects in
float16 (``train.py:396-406``; ``strip_optimizer`` in ``utils/general.py:614-625`` later replaces ``model`` by
``ema`` and sets ``ema`` to None). :func:`posecommon.hub.restricted_pickle.read_torch_checkpoint` reads them as data:
no module the file names is imported and nothing it names is called. As the official loader does
(``models/experimental.py:121``), the ``ema`` model is taken when present, else ``model``; its float16 tensors become
float32.

Official keys are ``model.<i>.<rest>``, ``<i>`` the layer index of ``models/hub/yolov5{s6,m6,l6}_kpts.yaml``. Inside a
layer, posezoo's modules keep YOLOv5's attribute names (``conv``/``bn``, ``cv1``-``cv3``, ``m``), so only the layer
prefix changes (:data:`LAYER_PREFIXES`); the detection layer 33 maps as :data:`HEAD_RULES`. Layers 13, 14, 17, 18,
21, 22, 25, 28 and 31 (upsampling and concatenation) have no tensors. The detection layer's ``anchors`` (pixels /
stride) and ``anchor_grid`` (pixels) buffers are not weights: they are checked against the config's anchors. Before
anything is copied the file's architecture is checked against the posezoo model: the class of each of the 34
layers, SiLU activations, BatchNorm eps, the yaml's depth and width multiples, keypoints and classes, and then
every key and shape (a file of another size, of the one-convolution keypoint head or of a plain detector is refused,
naming what differs). Everything else in the file (epoch, fitness, optimizer, hyper-parameters, names, the other
model) is listed in the report.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from posecommon.errors import IncompatibleWeightsError
from posecommon.hub.restricted_pickle import InertObject, ModuleTree, class_path, module_tree, read_torch_checkpoint
from posecommon.registry import register_converter

from .blocks import BN_EPS
from .config import VARIANTS
from .model import DRSINet

__all__ = [
    "HEAD_RULES",
    "LAYER_CLASSES",
    "LAYER_PREFIXES",
    "YOLO_POSE_MODELS",
    "YoloPoseConversion",
    "convert_yolo_pose",
    "focus_contract_to_slices",
    "official_key_to_posezoo",
    "yolo_pose_global_allowed",
]

logger = logging.getLogger(__name__)

YOLO_POSE_MODELS = ("yolo_pose_s6", "yolo_pose_m6", "yolo_pose_l6")
"""The registered layouts an official YOLO-Pose checkpoint converts into."""

LAYER_PREFIXES: dict[int, str] = {
    0: "backbone.stem",  # Focus
    1: "backbone.stages.0.0",  # Conv 3x3 s2 (P2/4)
    2: "backbone.stages.0.1",  # C3
    3: "backbone.stages.1.0",  # Conv (P3/8)
    4: "backbone.stages.1.1",  # C3
    5: "backbone.stages.2.0",  # Conv (P4/16)
    6: "backbone.stages.2.1",  # C3
    7: "backbone.stages.3.0",  # Conv (P5/32)
    8: "backbone.stages.3.1",  # C3
    9: "backbone.stages.4.0",  # Conv (P6/64)
    10: "backbone.stages.4.1",  # SPP
    11: "backbone.stages.4.2",  # C3 (no shortcut)
    12: "neck.lateral.0.0",  # Conv 1x1 before the upsample to P5
    15: "neck.td_csp.0",  # C3 after concat with layer 8
    16: "neck.lateral.1.0",
    19: "neck.td_csp.1",  # concat with layer 6
    20: "neck.lateral.2.0",
    23: "neck.td_csp.2",  # concat with layer 4: P3 output
    24: "neck.down.0.0",  # Conv 3x3 s2
    26: "neck.bu_csp.0",  # concat with layer 20: P4 output
    27: "neck.down.1.0",
    29: "neck.bu_csp.1",  # concat with layer 16: P5 output
    30: "neck.down.2.0",
    32: "neck.bu_csp.2",  # concat with layer 12: P6 output
}
"""Official layer index (``models/hub/yolov5s6_kpts.yaml:18-61``; m6 and l6 are the same list) -> posezoo prefix."""

HEAD_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"model\.33\.m\.(\d+)\.(weight|bias)"), r"head.box.\1.\2"),
    (re.compile(r"model\.33\.m_kpt\.(\d+)\.(10|[0-9])\.(conv\.weight|bn\.\w+)"), r"head.kpt.\1.\2.\3"),
    (re.compile(r"model\.33\.m_kpt\.(\d+)\.11\.(weight|bias)"), r"head.kpt_out.\1.\2"),
)
"""Detection layer 33 (``models/yolo.py:44-53``): the 1x1 box conv ``m[l]`` -> ``head.box[l]``; the keypoint branch
``m_kpt[l]`` (6 DWConv and 5 Conv, indices 0-10) -> ``head.kpt[l]``; its final 1x1 conv ``m_kpt[l][11]`` ->
``head.kpt_out[l]``."""

_C = "models.common."
_NN = "torch.nn.modules."
LAYER_CLASSES: tuple[str, ...] = (
    f"{_C}Focus",
    *[f"{_C}Conv", f"{_C}C3"] * 4,
    f"{_C}Conv",
    f"{_C}SPP",
    f"{_C}C3",
    *[f"{_C}Conv", f"{_NN}upsampling.Upsample", f"{_C}Concat", f"{_C}C3"] * 3,
    *[f"{_C}Conv", f"{_C}Concat", f"{_C}C3"] * 3,
    "models.yolo.Detect",
)
"""Class path of each of the 34 official layers (``models/yolo.py:268-324`` builds them from the yaml)."""

_SILU = f"{_NN}activation.SiLU"
_ALLOWED_EXACT = frozenset(
    {
        ("collections", "OrderedDict"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_parameter_with_state"),
        ("torch", "Size"),
        ("torch", "device"),
        ("__builtin__", "set"),
        ("builtins", "set"),
        ("_codecs", "encode"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
    }
)
_TORCH_NAME = re.compile(r"(Half|Float|Double|BFloat16|Byte|Char|Short|Int|Long|Bool)Storage|float(16|32|64)|bfloat16")


def yolo_pose_global_allowed(module: str, name: str) -> bool:
    """Whether an official YOLO-Pose checkpoint can name this global (checked before anything else is read).

    Such a file names the official classes (``models.*``, ``utils.*``), ``torch.nn`` modules, torch's tensor and
    storage rebuilding (``torch._utils._rebuild_tensor_v2``, ``torch.HalfStorage``, ...), ``collections.OrderedDict``,
    ``set``, and numpy's array reconstruction for its ``best_fitness`` (with ``_codecs.encode`` for bytes in
    protocol 2). Anything else (``posix.system``, ``builtins.eval``, ``subprocess.Popen``, ...) refuses the file.
    None of these names is imported or called either way.
    """
    if (module, name) in _ALLOWED_EXACT:
        return True
    if module == "torch" and _TORCH_NAME.fullmatch(name):
        return True
    return module.startswith(("models.", "utils.", "torch.nn.modules.")) and name.isidentifier()


def official_key_to_posezoo(key: str) -> str | None:
    """posezoo's name for an official YOLO-Pose state-dict key (``None`` when posezoo's layout has no such tensor).

    >>> official_key_to_posezoo("model.4.m.1.cv2.bn.running_var")
    'backbone.stages.1.1.m.1.cv2.bn.running_var'
    >>> official_key_to_posezoo("model.33.m_kpt.2.11.bias")
    'head.kpt_out.2.bias'
    """
    for pattern, replacement in HEAD_RULES:
        if pattern.fullmatch(key):
            return pattern.sub(replacement, key)
    match = re.fullmatch(r"model\.(\d+)\.(.+)", key)
    if match is None or int(match.group(1)) not in LAYER_PREFIXES:
        return None
    return f"{LAYER_PREFIXES[int(match.group(1))]}.{match.group(2)}"


@dataclass(frozen=True)
class YoloPoseConversion:
    """What :func:`convert_yolo_pose` read and did.

    Args:
        source: The checkpoint file.
        sha256: Its sha256.
        model_name: The posezoo model it was converted into.
        overrides: Config overrides the model was built with.
        taken: ``"ema"`` or ``"model"``: which pickled model the weights come from.
        loaded: Number of tensors copied (all of the model's).
        dtypes: Number of tensors per dtype in the file's model.
        checked: What was checked and matched, one line each (anchors, strides, BatchNorm eps, yaml).
        ignored: Everything else in the file, ``name -> description`` (top-level entries, attributes, buffers).
        globals_named: Every global the pickle names (none imported or called).
    """

    source: str
    sha256: str
    model_name: str
    overrides: dict[str, Any]
    taken: str
    loaded: int
    dtypes: dict[str, int]
    checked: tuple[str, ...] = ()
    ignored: dict[str, str] = field(default_factory=dict)
    globals_named: tuple[str, ...] = ()

    def summary(self) -> str:
        """One line: what was converted into what."""
        dtypes = ", ".join(f"{n} {d}" for d, n in self.dtypes.items())
        return (
            f"{Path(self.source).name} -> {self.model_name}: {self.loaded} tensors from '{self.taken}' ({dtypes}) "
            f"as float32; sha256 {self.sha256}"
        )

    def details(self) -> list[str]:
        """The report as lines: checks, ignored entries, globals named."""
        lines = [f"checked: {line}" for line in self.checked]
        lines += [f"ignored: {name} ({what})" for name, what in self.ignored.items()]
        lines.append(f"the pickle names {len(self.globals_named)} globals, none imported or called")
        return lines


def _describe(value: Any) -> str:
    if value is None or type(value) in (bool, int, float):
        return repr(value)
    if type(value) is str:
        return f"str of {len(value)} characters"
    if isinstance(value, torch.Tensor):
        return f"tensor {tuple(value.shape)} {value.dtype}"
    if type(value) in (list, tuple, dict):
        return f"{type(value).__name__} of {len(value)}"
    return class_path(value)


def _fail(what: str, message: str) -> IncompatibleWeightsError:
    return IncompatibleWeightsError(f"{what}: {message}")


def _check_layers(tree: ModuleTree, what: str) -> list[str]:
    for index, expected in enumerate(LAYER_CLASSES):
        got = tree.classes.get(f"model.{index}")
        if got != expected:
            raise _fail(
                what,
                f"layer {index} is {got or 'missing'}, where YOLO-Pose's P6 layout has {expected}; not a "
                "yolov5{s6,m6,l6}_kpts checkpoint",
            )
    if f"model.{len(LAYER_CLASSES)}" in tree.classes:
        raise _fail(what, f"more than {len(LAYER_CLASSES)} layers; not a yolov5*6_kpts checkpoint")
    activations = {c for k, c in tree.classes.items() if k.endswith(".act")}
    if activations - {_SILU}:
        raise _fail(
            what,
            f"activations {sorted(activations - {_SILU})}; posezoo's YOLO-Pose layouts use SiLU (the *_ti_lite "
            "variants use ReLU and are not supported)",
        )
    eps = {
        attrs.get("eps") for k, attrs in tree.attributes.items() if tree.classes[k].endswith("batchnorm.BatchNorm2d")
    }
    if eps != {BN_EPS}:
        raise _fail(what, f"BatchNorm eps {sorted(map(str, eps))}, posezoo's layouts use {BN_EPS}")
    return [f"34 layers of the P6 layout, SiLU activations, BatchNorm eps {BN_EPS}"]


def _check_yaml(tree: ModuleTree, config: Any, what: str) -> list[str]:
    yaml = tree.attributes.get("", {}).get("yaml")
    if not isinstance(yaml, dict):
        return ["no model yaml in the file: layout checked by keys and shapes only"]
    wanted = {
        "depth_multiple": config.depth_multiple,
        "width_multiple": config.width_multiple,
        "nkpt": config.num_joints,
        "nc": 1,
    }
    for name, value in wanted.items():
        if name in yaml and yaml[name] != value:
            hint = {"nkpt": "num_joints", "nc": None}.get(name, name)
            fix = f"; pass {hint}={yaml[name]!r} to build the model it fits" if hint else ""
            raise _fail(what, f"its yaml has {name} {yaml[name]!r}, the posezoo model {value!r}{fix}")
    if yaml.get("dw_conv_kpt") is False:
        raise _fail(
            what, "its yaml has dw_conv_kpt False: the one-convolution keypoint head, which posezoo does not build"
        )
    return [
        f"yaml depth_multiple {config.depth_multiple}, width_multiple {config.width_multiple}, nc 1, nkpt "
        f"{config.num_joints}"
    ]


def _check_anchors(tree: ModuleTree, config: Any, what: str) -> list[str]:
    expected = torch.tensor(config.anchors, dtype=torch.float32).view(len(config.anchors), -1, 2)
    grid = tree.tensors.get("model.33.anchor_grid")
    scaled = tree.tensors.get("model.33.anchors")
    stride = tree.tensor_attributes.get("model.33.stride")
    lines = []
    if stride is not None:
        if stride.float().tolist() != [float(s) for s in config.strides]:
            raise _fail(what, f"strides {stride.float().tolist()}, the posezoo model {list(config.strides)}")
        lines.append(f"strides {list(config.strides)}")
    if grid is not None:
        if grid.numel() != expected.numel() or not torch.equal(grid.float().reshape(expected.shape), expected):
            raise _fail(what, f"anchors {grid.float().reshape(-1).tolist()} differ from the config's; pass anchors=")
        lines.append("anchors (anchor_grid, pixels) equal the config's")
    if scaled is not None and stride is not None:
        pixels = scaled.float() * stride.float().view(-1, 1, 1)
        if pixels.shape != expected.shape or not torch.allclose(pixels, expected, rtol=1e-3):
            raise _fail(what, "anchors (divided by the stride) differ from the config's; pass anchors=")
        lines.append("anchors (grid units) times the strides equal the config's")
    return lines


def _pick_model(tree: ModuleTree, model_name: str | None, what: str) -> str:
    if model_name is not None:
        return model_name
    yaml = tree.attributes.get("", {}).get("yaml")
    multiples = (yaml.get("depth_multiple"), yaml.get("width_multiple")) if isinstance(yaml, dict) else None
    for name in YOLO_POSE_MODELS:
        if multiples == (VARIANTS[name].depth_multiple, VARIANTS[name].width_multiple):
            return name
    raise _fail(
        what,
        f"its depth/width multiples {multiples} are none of yolo_pose_s6 (0.33, 0.5), m6 (0.67, 0.75), l6 (1.0, 1.0); "
        "pass model_name= (and the config overrides that build the file's layout)",
    )


def _map_tensors(tree: ModuleTree, model: DRSINet, what: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    target = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    ignored: dict[str, str] = {}
    unmapped = []
    for key, value in tree.tensors.items():
        if key in ("model.33.anchors", "model.33.anchor_grid"):
            ignored[key] = f"buffer {tuple(value.shape)}, checked against the config"
            continue
        ours = official_key_to_posezoo(key)
        if ours is None or ours not in target:
            unmapped.append(key)
            continue
        if tuple(value.shape) != tuple(target[ours].shape):
            raise _fail(
                what,
                f"{key} has shape {tuple(value.shape)}, posezoo's {ours} {tuple(target[ours].shape)}; the file is "
                f"another size than {model.model_name} (pass model_name= or config overrides)",
            )
        mapped[ours] = value
    if unmapped:
        head = " (the one-convolution keypoint head)" if any(".m_kpt." in k for k in unmapped) else ""
        raise _fail(what, f"{len(unmapped)} tensors posezoo's layout does not have{head}, first {unmapped[:3]}")
    missing = [k for k in target if k not in mapped]
    if missing:
        raise _fail(what, f"the file lacks {len(missing)} of {model.model_name}'s tensors, first {missing[:3]}")
    return mapped, ignored


_FOCUS_WEIGHT = "backbone.stem.conv.conv.weight"


def focus_contract_to_slices(weight: torch.Tensor) -> torch.Tensor:
    """Reorder the input channels of the official Focus convolution for posezoo's :class:`~drsinet.blocks.Focus`.

    The yolo-pose ``Focus`` gets a ``Contract(gain=2)`` at construction and uses it whenever it has one
    (``models/common.py:178-192``): ``Contract`` (lines 212-223) puts the 2x2 pixel parities before the channels,
    block ``2 r + c`` for row parity ``r`` and column parity ``c``: (even, even), (even, odd), (odd, even),
    (odd, odd). posezoo's Focus slices as YOLOv5 does: (even, even), (odd, even), (even, odd), (odd, odd). The
    two middle blocks swap; the convolution that follows is the same function once its input channels follow.

    Shape:
        - weight: ``(C_out, 4 C_in, k, k)``, the official order; returns the same shape in posezoo's order
    """
    block = weight.shape[1] // 4
    order = torch.cat([torch.arange(b * block, (b + 1) * block) for b in (0, 2, 1, 3)])
    return weight[:, order]


def _ignored_entries(root: dict[Any, Any], taken: str, tree: ModuleTree) -> dict[str, str]:
    ignored = {f"checkpoint['{k}']": _describe(v) for k, v in root.items() if k != taken}
    for key, attrs in tree.attributes.items():
        if key == "":
            ignored.update({f"{taken}.{name}": _describe(value) for name, value in attrs.items()})
    ignored.update({f"{taken}.{k}": _describe(v) for k, v in tree.tensor_attributes.items()})
    ignored.update({f"{taken}.{k}": v for k, v in tree.others.items()})
    return ignored


@torch.no_grad()
def convert_yolo_pose(
    source: str | Path,
    save_dir: str | Path | None = None,
    model_name: str | None = None,
    **overrides: Any,
) -> tuple[DRSINet, YoloPoseConversion]:
    """Convert an official YOLO-Pose checkpoint (``last.pt``) into a posezoo model, reading it as data.

    Args:
        source: The official ``.pt`` file.
        save_dir: If given, the model is written there with :func:`~posecommon.hub.save_pretrained`
            (``model.safetensors``, ``config.json`` with ``converted_from``, ``README.md`` with the licence).
        model_name: ``yolo_pose_s6``, ``yolo_pose_m6`` or ``yolo_pose_l6``; by default the one whose depth and
            width multiples the file's yaml has.
        **overrides: Config overrides of the posezoo model, e.g. ``input_size=(640, 640)`` for the s6 file
            trained at 640 (the input size is not in the file).

    Returns:
        The model (train mode, float32, on the CPU) and the :class:`YoloPoseConversion` report.

    Raises:
        WeightsNotFoundError: the file does not exist.
        UnsafeWeightsError: its pickle names a global no YOLO-Pose checkpoint holds (nothing was imported or
            called; see :func:`yolo_pose_global_allowed`).
        IncompatibleWeightsError: the file is truncated, malformed or too large, holds no YOLO-Pose model, or one
            of another architecture, size, keypoint count, anchors or head (the message names what differs).
    """
    from posecommon.hub import save_pretrained
    from posecommon.registry import create_model

    checkpoint = read_torch_checkpoint(source, allowed_globals=yolo_pose_global_allowed)
    what = str(source)
    root = checkpoint.root
    if type(root) is not dict:
        raise _fail(what, f"holds a {class_path(root)}, not a YOLO-Pose checkpoint dict with 'model' / 'ema'")
    taken = "ema" if isinstance(root.get("ema"), InertObject) else "model"
    pickled = root.get(taken)
    if not isinstance(pickled, InertObject) or class_path(pickled) != "models.yolo.Model":
        raise _fail(what, f"its '{taken}' entry is {class_path(pickled)}, not a pickled models.yolo.Model")
    tree = module_tree(pickled, what)
    checked = _check_layers(tree, what)
    name = _pick_model(tree, model_name, what)
    if name not in YOLO_POSE_MODELS:
        raise _fail(what, f"model_name must be one of {YOLO_POSE_MODELS}, got {name!r}")
    model = create_model(name, **overrides)
    checked += _check_yaml(tree, model.config, what)
    checked += _check_anchors(tree, model.config, what)
    mapped, ignored = _map_tensors(tree, model, what)
    if tree.classes.get("model.0.contract") == "models.common.Contract":
        if tree.attributes.get("model.0.contract", {}).get("gain") != 2:
            raise _fail(what, "its Focus contracts with a gain other than 2")
        mapped[_FOCUS_WEIGHT] = focus_contract_to_slices(mapped[_FOCUS_WEIGHT])
        checked.append("Focus with Contract(gain=2): stem input channels reordered to posezoo's slicing order")
    target = model.state_dict()
    for key, value in mapped.items():
        target[key].copy_(value.to(target[key].dtype))
    dtypes: dict[str, int] = {}
    for value in tree.tensors.values():
        dtypes[str(value.dtype).removeprefix("torch.")] = dtypes.get(str(value.dtype).removeprefix("torch."), 0) + 1
    ignored.update(_ignored_entries(root, taken, tree))
    report = YoloPoseConversion(
        source=what,
        sha256=checkpoint.sha256,
        model_name=name,
        overrides=dict(overrides),
        taken=taken,
        loaded=len(mapped),
        dtypes=dtypes,
        checked=tuple(checked),
        ignored=ignored,
        globals_named=tuple(sorted(f"{m}.{n}" for m, n in checkpoint.globals_named)),
    )
    logger.info("official YOLO-Pose checkpoint: %s", report.summary())
    if save_dir is not None:
        save_pretrained(
            model,
            save_dir,
            training_data=_ORIGIN,
            license="gpl-3.0",
            converted_from=_converted_from(Path(source), checkpoint.sha256, taken),
        )
    return model, report


_ORIGIN = (
    "COCO train2017 keypoints: an official YOLO-Pose checkpoint (github.com/TexasInstruments/edgeai-yolov5, branch "
    "yolo-pose, GPL-3.0), converted by posezoo"
)


def _converted_from(path: Path, sha256: str, taken: str) -> Mapping[str, str]:
    return {
        "file": path.name,
        "sha256": sha256,
        "origin": f"official YOLO-Pose checkpoint (edgeai-yolov5 yolo-pose, GPL-3.0), its '{taken}' model, "
        "float16 -> float32",
    }


@register_converter(
    "yolo-pose",
    family="drsinet",
    summary="official YOLO-Pose last.pt (edgeai-yolov5 yolo-pose, s6/m6/l6) -> yolo_pose_s6/m6/l6, read as data",
    models=YOLO_POSE_MODELS,
    license="gpl-3.0",
)
def _convert(
    source: str | Path, save_dir: str | Path | None = None, model_name: str | None = None, **overrides: Any
) -> tuple[DRSINet, YoloPoseConversion]:
    return convert_yolo_pose(source, save_dir, model_name, **overrides)
