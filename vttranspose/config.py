"""Configuration of the VTTransPose family: one frozen dataclass drives the paper model and its baselines."""

from __future__ import annotations

from dataclasses import dataclass

from posecommon.config import check_choice, check_config_fields
from posecommon.errors import ConfigError

__all__ = ["VARIANTS", "VTTransPoseConfig"]

ATTENTIONS = ("twin", "full")
FFNS = ("dwsep", "mlp")
POS_EMBEDS = ("axial", "sine")
VBLOCK_PLACEMENTS = ("spread", "first", "last")


@dataclass(frozen=True)
class VTTransPoseConfig:
    """Architecture of a VTTransPose / TransPose-H-S model (HRNet-S-W32 + transformer encoder + 1x1 head).

    The three named variants (:data:`VARIANTS`) differ only in ``attention``, ``ffn``, ``pos_embed`` and
    ``num_vblocks``:

    - ``vttranspose_h_s``: twin attention, depthwise-separable FFN, axial position embeddings and 8 V blocks.
    - ``transpose_h_s``: the official TransPose-H-S (full self-attention, MLP FFN, fixed 2-D sine table added to
      queries and keys in every layer, basic blocks only).
    - ``transpose_h_s_twin``: the middle row of the paper's Table 5, TransPose-H-S with the twin-attention encoder
      and the basic blocks kept.

    V-block placement (the paper's Fig. 5 and text only say the V block replaces "the basic block in the third
    subnet"): replacing all 16 basic blocks of the 1/16 branch gives 4.2M parameters, far below the paper's 6.0M.
    Each replacement saves 232k parameters and 44.5M MACs at 256x192, so the count is fixed by the size: 8 V blocks
    give 6.03M parameters (paper 6.0M, +0.5 %) and 5.03 GMACs (paper 5.4G, -6.9 %; our counter leaves out the
    element-wise, softmax and normalisation terms the authors' counter includes). Any placement of 8 blocks has
    the same size; we spread them as 2 per stage-3 module (``vblock_placement="spread"``), replacing the last two
    blocks of each module's 1/16 branch, so the first two keep the TransPose-H-S checkpoint's basic blocks.

    Args:
        num_joints: Number of heatmaps K.
        input_size: ``(H, W)`` the model is built for; position tables are made for ``(H / 4, W / 4)`` and are
            interpolated (axial) or recomputed (sine) for other sizes.
        width: Channels of the 1/4 branch of HRNet-S (the 1/8 and 1/16 branches have 2x and 4x).
        stage3_modules: Number of high-resolution modules in stage 3.
        blocks_per_branch: Blocks per branch in every high-resolution module (stages 2 and 3).
        num_vblocks: Total number of basic blocks of the 1/16 branch of stage 3 replaced by V blocks.
        vblock_placement: ``"spread"`` (evenly over the stage-3 modules, remainder to the earlier ones),
            ``"first"`` (fill the earliest modules) or ``"last"`` (fill the latest modules). Within a module the
            V blocks replace the last blocks of the branch.
        vblock_scales: Channel groups of a V block (4 in the paper).
        d_model: Encoder width d.
        num_heads: Attention heads.
        num_layers: Encoder layers.
        dim_feedforward: Hidden width of the MLP feed-forward network (``ffn="mlp"`` only).
        attention: ``"twin"`` (column then row attention) or ``"full"`` (self-attention over all H*W tokens, the
            official DETR-style layer; requires ``ffn="mlp"``).
        ffn: ``"dwsep"`` (two depthwise-separable 3x3 convolutions joined by LeakyReLU) or ``"mlp"``.
        pos_embed: ``"axial"`` (learnable d x H x 1 and d x 1 x W, added once before the encoder) or ``"sine"``
            (fixed DETR sine table; with ``attention="full"`` it is added to queries and keys in every layer as in
            the official code, with ``attention="twin"`` it is added once before the encoder).
        dropout: Dropout on attention weights and on the residual branches of the encoder.
    """

    num_joints: int = 17
    input_size: tuple[int, int] = (256, 192)
    width: int = 32
    stage3_modules: int = 4
    blocks_per_branch: int = 4
    num_vblocks: int = 8
    vblock_placement: str = "spread"
    vblock_scales: int = 4
    d_model: int = 64
    num_heads: int = 1
    num_layers: int = 4
    dim_feedforward: int = 128
    attention: str = "twin"
    ffn: str = "dwsep"
    pos_embed: str = "axial"
    dropout: float = 0.1

    def __post_init__(self) -> None:
        check_config_fields(self)
        if min(self.input_size) < 16:
            raise ConfigError(
                f"VTTransPoseConfig.input_size must be an (H, W) pair of at least 16 pixels, got {self.input_size}; "
                f"nearest valid: {tuple(max(16, v) for v in self.input_size)}",
                "input_size",
            )
        if self.num_joints < 1:
            raise ConfigError(f"VTTransPoseConfig.num_joints must be >= 1, got {self.num_joints}", "num_joints")
        for name, choices in (
            ("attention", ATTENTIONS),
            ("ffn", FFNS),
            ("pos_embed", POS_EMBEDS),
            ("vblock_placement", VBLOCK_PLACEMENTS),
        ):
            check_choice(self, name, choices)
        if self.attention == "full" and self.ffn != "mlp":
            raise ConfigError("attention='full' is the official DETR-style layer and needs ffn='mlp'", "ffn")
        if self.num_heads < 1 or self.d_model % self.num_heads:
            divisors = [h for h in range(1, self.d_model + 1) if self.d_model % h == 0]
            nearest = sorted(divisors, key=lambda h: (abs(h - self.num_heads), h))[:2]
            raise ConfigError(
                f"VTTransPoseConfig.num_heads={self.num_heads} does not divide d_model={self.d_model}; nearest valid "
                f"num_heads: {' or '.join(str(h) for h in sorted(nearest))}",
                "num_heads",
            )
        most = self.stage3_modules * self.blocks_per_branch
        if not 0 <= self.num_vblocks <= most:
            raise ConfigError(
                f"VTTransPoseConfig.num_vblocks must be within 0..{most} (stage-3 modules x blocks per branch), got "
                f"{self.num_vblocks}; nearest valid: {min(max(self.num_vblocks, 0), most)}",
                "num_vblocks",
            )

    def vblocks_per_module(self) -> tuple[int, ...]:
        """How many blocks of the 1/16 branch each stage-3 module turns into V blocks, following the placement."""
        n, modules, cap = self.num_vblocks, self.stage3_modules, self.blocks_per_branch
        if self.vblock_placement == "spread":
            return tuple(n // modules + (1 if i < n % modules else 0) for i in range(modules))
        counts = [min(cap, max(0, n - i * cap)) for i in range(modules)]
        return tuple(counts) if self.vblock_placement == "first" else tuple(reversed(counts))


VARIANTS: dict[str, VTTransPoseConfig] = {
    "vttranspose_h_s": VTTransPoseConfig(),
    "transpose_h_s": VTTransPoseConfig(num_vblocks=0, attention="full", ffn="mlp", pos_embed="sine"),
    "transpose_h_s_twin": VTTransPoseConfig(num_vblocks=0),
}
"""Named configurations of the three registered models."""
