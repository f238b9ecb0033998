"""Write stand-ins of the official YOLO-Pose checkpoints (run as a script, in its own process).

No official checkpoint can be downloaded here, so this script builds what ``torch.save`` writes for one: a dict
``{'epoch', 'best_fitness', 'training_results', 'model', 'ema', 'updates', 'optimizer', 'wandb_id'}`` whose ``model``
and ``ema`` are whole pickled ``models.yolo.Model`` objects in float16 (edgeai-yolov5 branch yolo-pose,
``train.py:396-406``). The classes are defined here from what the official code does (layer list of
``models/hub/yolov5s6_kpts.yaml``, ``Conv``/``Focus``/``Contract``/``Bottleneck``/``C3``/``SPP``/``Concat`` of
``models/common.py``, ``Detect``/``Model`` of ``models/yolo.py``) and registered as ``models.common`` and
``models.yolo`` in ``sys.modules`` of *this* process only, so the pickle names the official class paths, which
do not exist in the test process. Their forward passes follow the official ones (the Focus's ``Contract`` channel
order, the detection head's concatenate-then-view), and the raw outputs of the pickled models are saved beside
the checkpoints as the reference a conversion must reproduce.

Usage: ``python tests/yolo_pose_standin.py OUT_DIR`` writes ``official.pt`` (model and EMA with different
weights), ``stripped.pt`` (``strip_optimizer``'s layout: ``ema`` None, ``model`` the EMA), ``one_conv_head.pt``
(``dw_conv_kpt`` False), ``payload.pt`` (an entry whose unpickling would call ``os.system`` to create
``OUT_DIR/SENTINEL``), ``reference.pt`` (input and raw outputs, tensors only) and ``layout.json``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

DEPTH, WIDTH, NKPT, SIZE = 0.33, 0.125, 17, 128
ANCHORS = [[19, 27, 44, 40, 38, 94], [96, 68, 86, 152, 180, 137], [140, 301, 303, 264, 238, 542]]
ANCHORS += [[436, 615, 739, 380, 925, 792]]
# (from, repeats, module, args) per layer, as models/hub/yolov5s6_kpts.yaml:18-61.
LAYERS = [
    (-1, 1, "Focus", [64, 3]),
    (-1, 1, "Conv", [128, 3, 2]),
    (-1, 3, "C3", [128]),
    (-1, 1, "Conv", [256, 3, 2]),
    (-1, 9, "C3", [256]),
    (-1, 1, "Conv", [512, 3, 2]),
    (-1, 9, "C3", [512]),
    (-1, 1, "Conv", [768, 3, 2]),
    (-1, 3, "C3", [768]),
    (-1, 1, "Conv", [1024, 3, 2]),
    (-1, 1, "SPP", [1024, [3, 5, 7]]),
    (-1, 3, "C3", [1024, False]),
    (-1, 1, "Conv", [768, 1, 1]),
    (-1, 1, "nn.Upsample", [None, 2, "nearest"]),
    ([-1, 8], 1, "Concat", [1]),
    (-1, 3, "C3", [768, False]),
    (-1, 1, "Conv", [512, 1, 1]),
    (-1, 1, "nn.Upsample", [None, 2, "nearest"]),
    ([-1, 6], 1, "Concat", [1]),
    (-1, 3, "C3", [512, False]),
    (-1, 1, "Conv", [256, 1, 1]),
    (-1, 1, "nn.Upsample", [None, 2, "nearest"]),
    ([-1, 4], 1, "Concat", [1]),
    (-1, 3, "C3", [256, False]),
    (-1, 1, "Conv", [256, 3, 2]),
    ([-1, 20], 1, "Concat", [1]),
    (-1, 3, "C3", [512, False]),
    (-1, 1, "Conv", [512, 3, 2]),
    ([-1, 16], 1, "Concat", [1]),
    (-1, 3, "C3", [768, False]),
    (-1, 1, "Conv", [768, 3, 2]),
    ([-1, 12], 1, "Concat", [1]),
    (-1, 3, "C3", [1024, False]),
    ([23, 26, 29, 32], 1, "Detect", ["nc", "anchors", "nkpt"]),
]


class Conv(nn.Module):
    def __init__(self, c1, c2, k=1, s=1, g=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Contract(nn.Module):
    def __init__(self, gain=2):
        super().__init__()
        self.gain = gain

    def forward(self, x):  # (N, C, H, W) -> (N, s * s * C, H / s, W / s), channel = (row parity, col parity, c)
        n, c, h, w = x.shape
        s = self.gain
        return x.view(n, c, h // s, s, w // s, s).permute(0, 3, 5, 1, 2, 4).reshape(n, s * s * c, h // s, w // s)


class Focus(nn.Module):
    def __init__(self, c1, c2, k=1):
        super().__init__()
        self.contract = Contract(gain=2)
        self.conv = Conv(4 * c1, c2, k)

    def forward(self, x):
        return self.conv(self.contract(x))


class Bottleneck(nn.Module):
    def __init__(self, c1, c2, shortcut=True):
        super().__init__()
        self.cv1 = Conv(c1, c2, 1)
        self.cv2 = Conv(c2, c2, 3)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))


class C3(nn.Module):
    def __init__(self, c1, c2, n=1, shortcut=True):
        super().__init__()
        hidden = c2 // 2
        self.cv1 = Conv(c1, hidden)
        self.cv2 = Conv(c1, hidden)
        self.cv3 = Conv(2 * hidden, c2)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut) for _ in range(n)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class SPP(nn.Module):
    def __init__(self, c1, c2, k=(3, 5, 7)):
        super().__init__()
        hidden = c1 // 2
        self.cv1 = Conv(c1, hidden)
        self.cv2 = Conv(hidden * (len(k) + 1), c2)
        # kernel k as (k - 1) / 2 chained 3x3 pools, one MaxPool2d object repeated (models/common.py:161-168)
        self.m = nn.ModuleList(nn.Sequential(*[nn.MaxPool2d(3, 1, 1)] * ((size - 1) // 2)) for size in k)

    def forward(self, x):
        x = self.cv1(x)
        return self.cv2(torch.cat([x] + [pool(x) for pool in self.m], 1))


class Concat(nn.Module):
    def __init__(self, dimension=1):
        super().__init__()
        self.d = dimension

    def forward(self, x):
        return torch.cat(x, self.d)


class Detect(nn.Module):
    def __init__(self, nc, anchors, nkpt, ch, dw_conv_kpt):
        super().__init__()
        self.nc, self.nkpt, self.dw_conv_kpt = nc, nkpt, dw_conv_kpt
        self.no_det, self.no_kpt = nc + 5, 3 * nkpt
        self.no = self.no_det + self.no_kpt
        self.nl, self.na = len(anchors), len(anchors[0]) // 2
        self.grid = [torch.zeros(1)] * self.nl
        self.flip_test = False
        a = torch.tensor(anchors).float().view(self.nl, -1, 2)
        self.register_buffer("anchors", a)
        self.register_buffer("anchor_grid", a.clone().view(self.nl, 1, -1, 1, 1, 2))
        self.m = nn.ModuleList(nn.Conv2d(c, self.no_det * self.na, 1) for c in ch)
        if dw_conv_kpt:
            self.m_kpt = nn.ModuleList(
                nn.Sequential(
                    *[m for _ in range(5) for m in (Conv(c, c, 3, g=c), Conv(c, c))],
                    Conv(c, c, 3, g=c),
                    nn.Conv2d(c, self.no_kpt * self.na, 1),
                )
                for c in ch
            )
        else:
            self.m_kpt = nn.ModuleList(nn.Conv2d(c, self.no_kpt * self.na, 1) for c in ch)
        self.inplace = True

    def forward(self, x):  # the training-mode output: raw (B, na, H, W, no) per level
        out = []
        for i in range(self.nl):
            y = torch.cat((self.m[i](x[i]), self.m_kpt[i](x[i])), 1)  # models/yolo.py:67
            b, _, h, w = y.shape
            out.append(y.view(b, self.na, self.no, h, w).permute(0, 1, 3, 4, 2).contiguous())  # :69-70
        return out


class Model(nn.Module):
    def __init__(self, yaml):
        super().__init__()
        self.yaml = yaml
        self.yaml_file = "yolov5s6_kpts.yaml"
        layers, channels, save = [], [], []  # channels[j]: output width of layer j
        for i, (src, n, kind, args) in enumerate(yaml["backbone"] + yaml["head"]):
            n = max(round(n * yaml["depth_multiple"]), 1) if n > 1 else n
            c_in = 3 if i == 0 else channels[src] if isinstance(src, int) else None
            out = math.ceil(args[0] * yaml["width_multiple"] / 8) * 8 if isinstance(args[0], int) else None
            if kind == "Focus":
                module = Focus(c_in, out, args[1])
            elif kind == "Conv":
                module = Conv(c_in, out, args[1], args[2])
            elif kind == "C3":
                module = C3(c_in, out, n, *args[1:])
            elif kind == "SPP":
                module = SPP(c_in, out, args[1])
            elif kind == "nn.Upsample":
                module, out = nn.Upsample(None, 2, "nearest"), c_in
            elif kind == "Concat":
                module, out = Concat(1), sum(channels[j] for j in src)
            else:
                ch = [channels[j] for j in src]
                module = Detect(yaml["nc"], yaml["anchors"], yaml["nkpt"], ch, yaml.get("dw_conv_kpt", False))
            module.i, module.f, module.type = i, src, kind
            module.np = sum(p.numel() for p in module.parameters())
            save.extend(j % i for j in ([src] if isinstance(src, int) else src) if j != -1)
            layers.append(module)
            channels.append(out)
        self.model = nn.Sequential(*layers)
        self.save = sorted(save)
        self.names = ["person"]
        self.inplace = True
        detect = self.model[-1]
        detect.stride = torch.tensor([8.0, 16.0, 32.0, 64.0])
        detect.anchors /= detect.stride.view(-1, 1, 1)  # models/yolo.py:142
        self.stride = detect.stride
        for module in self.modules():  # utils/torch_utils.py initialize_weights: BN eps 1e-3, momentum 0.03
            if isinstance(module, nn.BatchNorm2d):
                module.eps, module.momentum = 1e-3, 0.03

    def forward(self, x):
        outputs = []
        for module in self.model:
            if module.f != -1:
                x = outputs[module.f] if isinstance(module.f, int) else [x if j == -1 else outputs[j] for j in module.f]
            x = module(x)
            outputs.append(x if module.i in self.save else None)
        return x


class _SystemCall:
    """Pickles as a call of os.system (what a malicious checkpoint does)."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _register_official_modules():
    package = types.ModuleType("models")
    common = types.ModuleType("models.common")
    yolo = types.ModuleType("models.yolo")
    for cls in (Conv, Contract, Focus, Bottleneck, C3, SPP, Concat):
        cls.__module__ = "models.common"
        setattr(common, cls.__name__, cls)
    for cls in (Detect, Model):
        cls.__module__ = "models.yolo"
        setattr(yolo, cls.__name__, cls)
    package.common, package.yolo = common, yolo
    sys.modules.update({"models": package, "models.common": common, "models.yolo": yolo})


def official_yaml(dw_conv_kpt=True, depth=DEPTH, width=WIDTH):
    """The yaml the official ``Model`` keeps (``models/hub/yolov5s6_kpts.yaml``; m6/l6 differ in the multiples)."""
    backbone = [list(layer) for layer in LAYERS[:12]]
    head = [list(layer) for layer in LAYERS[12:]]
    yaml = {"nc": 1, "nkpt": NKPT, "depth_multiple": depth, "width_multiple": width, "anchors": ANCHORS}
    if dw_conv_kpt:
        yaml["dw_conv_kpt"] = True
    return {**yaml, "backbone": backbone, "head": head}


def _randomise(model, seed):
    """O(1) outputs: random conv weights scaled by fan-in, random BatchNorm affine and statistics."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.weight[0].numel()
            module.weight.data = torch.randn(module.weight.shape, generator=gen) * (1.5 / fan_in) ** 0.5
            if module.bias is not None:
                module.bias.data = torch.randn(module.bias.shape, generator=gen) * 0.5
        elif isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.weight.data = torch.rand(c, generator=gen) * 0.5 + 0.75
            module.bias.data = torch.randn(c, generator=gen) * 0.1
            module.running_mean = torch.randn(c, generator=gen) * 0.1
            module.running_var = torch.rand(c, generator=gen) + 0.5
            module.num_batches_tracked = torch.tensor(1000 + seed)
    return model


def _checkpoint(model, ema):
    return {
        "epoch": 299,
        "best_fitness": np.array([0.6021]),
        "training_results": "      299/299     7.2G   0.02   0.01 ...",
        "model": model,
        "ema": ema,
        "updates": 123456,
        "optimizer": None,
        "wandb_id": None,
    }


def main(out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _register_official_modules()
    torch.manual_seed(0)
    model = _randomise(Model(official_yaml()), seed=1).half()
    ema = _randomise(Model(official_yaml()), seed=2).half()
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    reference = {"input": x}
    with torch.no_grad():
        for name, net in (("ema", ema), ("model", model)):
            copy = Model(official_yaml())
            copy.load_state_dict({k: v.float() for k, v in net.state_dict().items()})
            for level, raw in enumerate(copy.eval()(x)):
                reference[f"{name}.{level}"] = raw
    torch.save(_checkpoint(model, ema), out / "official.pt")
    torch.save({**_checkpoint(ema, None), "epoch": -1, "updates": None}, out / "stripped.pt")
    one_conv = _randomise(Model(official_yaml(dw_conv_kpt=False)), seed=4).half()
    torch.save(_checkpoint(None, one_conv), out / "one_conv_head.pt")
    payload = _checkpoint(model, ema)
    payload["wandb_id"] = _SystemCall(f"touch {out / 'SENTINEL'}")
    torch.save(payload, out / "payload.pt")
    torch.save(reference, out / "reference.pt")
    num_params = sum(p.numel() for p in ema.parameters())
    layout = {"depth_multiple": DEPTH, "width_multiple": WIDTH, "input_size": SIZE, "num_params": num_params}
    (out / "layout.json").write_text(json.dumps(layout))


if __name__ == "__main__":
    main(sys.argv[1])
