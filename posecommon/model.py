"""The base class of every posezoo model (:class:`PoseModel`) and the one builder behind every entrypoint
(:func:`build_model`).

A family's model class subclasses :class:`PoseModel` and supplies its hooks: ``preprocess``, ``predict_kernel``
(what :meth:`PoseModel.predict` runs), ``training_task`` / ``training_dataset`` / ``train_recipe`` (what the trainer
runs) and, where needed, ``export_module`` and ``apply_build_options``. Everything else (weights, prediction over
any input, saving, publishing) is written once here and in the packages below.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from torch import nn
from torch.utils.data import Dataset

from . import hub
from .config import config_for_keypoints, config_to_dict
from .errors import ConfigError, IncompatibleWeightsError, InvalidInputError
from .hub import LoadReport, load_pretrained, load_resolved
from .keypoints import KeypointSpec, default_keypoint_spec
from .layers.features import FeatureInfo, FeatureListNet
from .layers.fuse import fuse_model
from .predict import PredictKernel, run_predict
from .preprocess import PreprocessConfig
from .registry import create_model
from .structures import PoseResult

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo

    from .train.config import TrainTask
    from .train.recipe import TrainRecipe

__all__ = ["PoseModel", "build_model"]

ModelT = TypeVar("ModelT", bound="PoseModel")

logger = logging.getLogger(__name__)


class PoseModel(nn.Module):
    """Common base of the model classes of :mod:`vttranspose` and :mod:`drsinet`.

    Subclasses take one frozen config dataclass with at least a ``num_joints`` field and implement
    :attr:`preprocess` and :meth:`predict_kernel`. ``forward`` returns raw tensors, the same in train and eval mode;
    decoding lives in the kernel, outside the model.

    Args:
        config: The family's config dataclass.
        keypoint_spec: Keypoint set the model predicts; defaults to :data:`~posecommon.COCO17` when
            ``config.num_joints == 17`` and to a generic spec (no flip pairs, no sigmas) otherwise.

    Raises:
        ValueError: ``keypoint_spec`` has a different number of joints than ``config.num_joints``.
    """

    model_name: str = ""
    variants: ClassVar[Mapping[str, Any]] = {}
    """Registry name -> config of the named variants :func:`build_model` builds."""
    build_options: ClassVar[tuple[str, ...]] = ()
    """Entrypoint keywords that are no config field, handed to :meth:`apply_build_options` (e.g.
    ``backbone_weights``)."""
    head_prefixes: tuple[str, ...] = ()
    """State-dict prefixes of the keypoint head (the parameters whose shapes depend on ``num_joints``)."""
    head_modules: tuple[str, ...] = ()
    """Names of the child modules that form the head (left out by ``features_only=True``)."""
    feature_info: FeatureInfo
    """The multi-scale maps the model offers to other networks (timm's form, :mod:`posecommon.layers.features`):
    channels, stride and module of each; :meth:`forward_intermediates` returns them."""
    pretrained_report: LoadReport | None = None
    """What the last weight load did (set by ``pretrained=`` and :meth:`from_pretrained`)."""
    train_recipe: ClassVar[TrainRecipe | None] = None
    """The family's published training recipe (:class:`~posecommon.train.TrainRecipe`), used by ``posezoo train``."""

    def __init__(self, config: Any, keypoint_spec: KeypointSpec | None = None) -> None:
        super().__init__()
        num_joints = int(config.num_joints)
        if keypoint_spec is None:
            keypoint_spec = default_keypoint_spec(num_joints)
            if keypoint_spec.name != "coco17":
                logger.info("no KeypointSpec given for %d joints: flip test will not swap joints", num_joints)
        if keypoint_spec.num_joints != num_joints:
            raise ValueError(
                f"keypoint_spec {keypoint_spec.name!r} has {keypoint_spec.num_joints} joints but the config asks "
                f"for num_joints={num_joints}"
            )
        self.config = config
        self.keypoint_spec = keypoint_spec

    @property
    def preprocess(self) -> PreprocessConfig:
        """How raw images become this model's input (input size, mean/std, crop or letterbox)."""
        raise NotImplementedError

    def forward_features(self, x: Any) -> Any:
        """The features the head takes (a family returns one map or a list of maps; see its class docstring).

        Raises:
            NotImplementedError: the family offers no features.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define forward_features")

    def forward_intermediates(
        self, x: Any, indices: int | list[int] | None = None, intermediates_only: bool = False
    ) -> Any:
        """The maps of :attr:`feature_info` selected by ``indices``, as timm's ``forward_intermediates``.

        Args:
            x: Input images.
            indices: ``None`` (all), an int ``n`` (the last ``n``) or a list of indices.
            intermediates_only: Return only the selected maps (parts after the last one need not run).

        Returns:
            ``(forward_features(x), selected maps)``, or the selected maps alone.

        Raises:
            NotImplementedError: the family offers no feature maps.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define forward_intermediates")

    def apply_build_options(self, pretrained: bool, **options: Any) -> None:
        """Act on :attr:`build_options` once the model is built, before ``pretrained=`` weights load.

        Args:
            pretrained: Whether weights will be loaded over the model afterwards.
            **options: The build options the entrypoint was given.
        """
        if options:
            raise InvalidInputError(f"{type(self).__name__} takes no build options, got {sorted(options)}")

    def predict_kernel(self, **options: Any) -> PredictKernel:
        """The kernel :meth:`predict` runs, built from the model's prediction options (documented by each family:
        :class:`drsinet.predict.DetectionKernel`, :class:`vttranspose.predict.TopDownKernel`).

        Raises:
            NotImplementedError: the model does not predict.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define a predict kernel")

    def predict(self, source: Any, **options: Any) -> PoseResult | list[PoseResult] | Iterator[PoseResult]:
        """Poses in one image, a list of images, a directory, glob, URL, video or generator.

        Args:
            source: See :mod:`posecommon.predict.sources` for every accepted input.
            **options: The model's prediction options (the keywords of its :meth:`predict_kernel`: thresholds and
                input size for DRSI-Net, flip test and crop settings for VTTransPose) and the run options of every
                ``predict`` (:class:`~posecommon.predict.RunOptions`: ``batch_size``, ``device``, ``half``, ``bgr``,
                ``stream``, ``fuse``, ``channels_last``).

        Returns:
            One :class:`~posecommon.PoseResult` for a single image, a list for a list input (or a directory, glob
            or batched array), an iterator for a video or generator (or with ``stream=True``); coordinates in each
            image's own pixels.

        Raises:
            InvalidInputError: an unknown or invalid option.
            BadImageError: an image cannot be read or has an unsupported type, mode or shape.
        """
        return run_predict(self.predict_kernel, source, **options)

    def export_module(self, include_decode: bool = False, top_k: int | None = None) -> nn.Module:
        """The module ONNX export traces: the model itself, or a family's wrapper that decodes in the graph.

        Args:
            include_decode: Decode inside the graph (only families that support it).
            top_k: With ``include_decode``: keep the best ``top_k`` candidates per image.

        Raises:
            InvalidInputError: ``include_decode`` for a model that cannot decode in the graph.
        """
        if include_decode or top_k is not None:
            name = self.model_name or type(self).__name__
            raise InvalidInputError(f"include_decode is not available for {name}: it has no decoding to export")
        return self

    def training_task(self, global_batch_size: int) -> TrainTask:
        """The :class:`~posecommon.train.TrainTask` (collation and loss) this model trains with.

        Args:
            global_batch_size: Samples per optimiser step over all processes (some losses scale with it).
        """
        raise NotImplementedError(f"{type(self).__name__} does not define a training task")

    def training_dataset(
        self, ann_file: str | Path, image_dir: str | Path, train: bool = True, **augmentation: float
    ) -> Dataset:
        """The COCO-format dataset this model trains on, built for its input size and keypoint set.

        Args:
            ann_file: COCO keypoints annotation file.
            image_dir: Its image directory.
            train: Random augmentation on (else the plain evaluation transform).
            **augmentation: Overrides of the dataset's augmentation arguments (e.g. ``rotation=15``).
        """
        raise NotImplementedError(f"{type(self).__name__} does not define a training dataset")

    def config_dict(self) -> dict[str, Any]:
        """JSON-able description: registry name, config, keypoint spec and preprocessing."""
        return {
            "model_name": self.model_name,
            "config": config_to_dict(self.config),
            "keypoint_spec": self.keypoint_spec.to_dict(),
            "preprocess": self.preprocess.to_dict(),
        }

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Gradient checkpointing in training (timm's name): the family's segments keep only their inputs for
        backward and run their forward again there, trading about one more forward pass for activation memory.

        Each family chooses its segments by giving modules a ``grad_checkpointing`` attribute that their
        ``forward`` reads (DRSI-Net: the Focus stem, every C3 as a whole, each block of every C3DR and each
        keypoint-branch layer; VTTransPose: the HRNet modules and the encoder layers); this sets all of them.
        BatchNorm statistics are updated once per step (:func:`~posecommon.layers.checkpoint_module`), so
        gradients and buffers equal those without it.

        Raises:
            NotImplementedError: the model has no checkpointing segments.
        """
        segments = [m for m in self.modules() if m is not self and hasattr(m, "grad_checkpointing")]
        if not segments:
            raise NotImplementedError(f"{type(self).__name__} defines no gradient checkpointing segments")
        for module in segments:
            module.grad_checkpointing = enable

    def set_memory_lean(self, enable: bool = True) -> None:
        """Switch the memory-lean training forward of every block that has one (``memory_lean`` attributes, on by
        default; DRSI-Net's gated blocks): with it, such a block keeps only its input and its dense convolutions'
        outputs for backward (:func:`~posecommon.layers.checkpoint_dense_convolutions`). Off, autograd keeps every
        intermediate, as before; outputs and gradients are the same either way."""
        for module in self.modules():
            if hasattr(module, "memory_lean"):
                module.memory_lean = enable

    def fuse(self) -> PoseModel:
        """Fold BatchNorm into convolutions (and merge re-parameterisable convs) in place for inference.

        Switches the model to eval mode; returns ``self``. Outputs agree with the unfused model to float rounding.
        """
        fuse_model(self)
        return self

    def save_pretrained(
        self,
        save_dir: str | Path,
        *,
        training_data: str = "",
        metrics: Mapping[str, float] | None = None,
        license: str = "",
    ) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a ``README.md`` model card.

        See :func:`posecommon.hub.save_pretrained`; returns ``save_dir``.

        Args:
            save_dir: Directory to write (created if needed).
            training_data: Description of the training data for the model card.
            metrics: Measured metrics of these weights.
            license: Licence of the weights (SPDX id).
        """
        return hub.save_pretrained(self, save_dir, training_data=training_data, metrics=metrics, license=license)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> CommitInfo:
        """Save and upload to a Hub model repository; see :func:`posecommon.hub.push_to_hub` for the options.

        Args:
            repo_id: ``"org/name"``.
            **kwargs: ``private``, ``token``, ``revision``, ``commit_message``, ``training_data``, ``metrics``,
                ``license``.
        """
        return hub.push_to_hub(self, repo_id, **kwargs)

    @classmethod
    def from_pretrained(cls, source: str | Path, *, revision: str | None = None) -> PoseModel:
        """Rebuild a model saved with :meth:`save_pretrained` / :meth:`push_to_hub` and load its weights.

        ``config.json`` is validated first (:mod:`posecommon.hub.saved_config`) and the weight file is verified
        against the sha256 it records (a WARNING when none is recorded), all before anything is built. The
        ``config`` object is then checked against the model's config dataclass, bounds included
        (:func:`~posecommon.config.check_bounds`): a key that is no field (``"pretrained"``, a typo), a value of
        the wrong type or out of range is a :class:`~posecommon.errors.ConfigError` naming the field, and nothing
        else reaches the model's entrypoint. The model is then built through the registry with random weights, gets
        the saved keypoint spec, and its weights are loaded strictly.

        Args:
            source: A local directory, ``"hf-hub:org/repo[@revision]"`` or ``"org/repo"``.
            revision: Hub revision (branch, tag or commit hash); overrides ``@revision`` in ``source``.

        Returns:
            The model (in train mode, like a freshly built one), with :attr:`pretrained_report` set.

        Raises:
            InvalidInputError: the Hub id or revision is not valid.
            WeightsNotFoundError, HubUnavailableError: the source cannot be found or fetched.
            ChecksumError: ``model.safetensors`` does not match the sha256 in ``config.json``.
            ConfigError: ``config.json`` has an unknown or wrongly typed field, or its ``config`` does not fit the
                model's config dataclass (the message names the field).
            IncompatibleWeightsError: the saved model is not a ``cls``, the config does not rebuild the same model,
                the keypoint spec is malformed, or the weights do not fit.
            UnknownModelError: the saved registry name is not registered in this installation.
        """
        saved, weights = hub.fetch_pretrained(source, revision)
        if weights.sha256 is not None:  # before anything is built from the config that came with the weights
            hub.verify_sha256(weights.path, weights.sha256, weights.source)
        name, config = saved["model_name"], saved["config"]
        where = f"{hub.CONFIG_NAME} of {weights.source}"
        entrypoint_only = [key for key in ("pretrained", "keypoint_spec") if key in config]
        if entrypoint_only:
            raise ConfigError(
                f"{where}: field 'config.{entrypoint_only[0]}' is not a field of {name}'s config (an entrypoint "
                "argument cannot be set from a saved config); remove it",
                entrypoint_only[0],
            )
        keypoint_spec = _saved_keypoint_spec(saved, where)
        try:
            model = create_model(name, pretrained=False, **config)
        except ConfigError as err:
            raise ConfigError(f"{where}: 'config': {err}", err.field) from err
        if not isinstance(model, cls):
            raise IncompatibleWeightsError(
                f"{weights.source} holds a {type(model).__name__} ({name}), not a {cls.__name__}; "
                "call PoseModel.from_pretrained to accept any model"
            )
        rebuilt = config_to_dict(model.config)
        differing = sorted(k for k in set(config) | set(rebuilt) if config.get(k) != rebuilt.get(k))
        if differing:
            raise IncompatibleWeightsError(
                f"{weights.source}: building {name} from the saved config gives different values for "
                f"{differing}; was it saved with another posezoo version?"
            )
        if keypoint_spec is not None:
            if keypoint_spec.num_joints != model.config.num_joints:
                raise IncompatibleWeightsError(
                    f"{where}: field 'keypoint_spec' has {keypoint_spec.num_joints} joints but 'config.num_joints' is "
                    f"{model.config.num_joints}"
                )
            model.keypoint_spec = keypoint_spec
        model.pretrained_report = load_resolved(model, weights, verified=True)
        return model


def _saved_keypoint_spec(saved: Mapping[str, Any], where: str) -> KeypointSpec | None:
    """The ``keypoint_spec`` of a saved ``config.json``, or ``None`` when it records none."""
    if "keypoint_spec" not in saved:
        return None
    try:
        return KeypointSpec.from_dict(saved["keypoint_spec"])
    except (KeyError, TypeError, ValueError) as err:
        raise IncompatibleWeightsError(f"{where}: field 'keypoint_spec' is malformed: {err!r}") from err


def build_model(
    model_cls: type[ModelT], name: str, pretrained: bool | str | Path = False, **kwargs: Any
) -> ModelT | FeatureListNet:
    """Build the registered variant ``name`` of ``model_cls``: what every entrypoint runs.

    The variant's config (``model_cls.variants[name]``) gets the keyword overrides (checked field by field), the
    model is built with random weights, the class's build options are applied, then ``pretrained`` weights are
    loaded strictly (:func:`~posecommon.hub.load_pretrained`).

    With ``features_only=True`` (timm's option) the result is the model without its head, a
    :class:`~posecommon.layers.FeatureListNet` whose forward returns the maps of ``feature_info`` at
    ``out_indices`` (default: all); ``pretrained`` weights of the full model load into it with the head's entries
    ignored and the rest checked strictly.

    Args:
        model_cls: A :class:`PoseModel` subclass.
        name: Its registry name.
        pretrained: ``False`` (random weights), ``True`` (the default published weights), a weight tag, a local
            ``.safetensors`` file, a ``save_pretrained`` directory or ``"hf-hub:org/repo[@revision]"``.
        **kwargs: Fields of the family's config dataclass (``num_joints``, ``input_size``, ...), ``keypoint_spec``
            (a :class:`~posecommon.KeypointSpec`, which implies ``num_joints``), the class's
            :attr:`~PoseModel.build_options`, and ``features_only`` / ``out_indices`` (see above).

    Returns:
        The model (or its :class:`~posecommon.layers.FeatureListNet`), in train mode, with ``pretrained_report``
        set when weights were loaded.

    Raises:
        ConfigError: a keyword names no config field (the message suggests the closest), or a value is invalid.
        InvalidInputError: ``out_indices`` without ``features_only=True``.
        IndexError: an index of ``out_indices`` is out of range for the model's ``feature_info``.
        WeightsNotFoundError, HubUnavailableError, ChecksumError, UnsafeWeightsError, IncompatibleWeightsError:
            see :func:`~posecommon.hub.load_pretrained`.
    """
    keypoint_spec = kwargs.pop("keypoint_spec", None)
    features_only = bool(kwargs.pop("features_only", False))
    out_indices = kwargs.pop("out_indices", None)
    if out_indices is not None and not features_only:
        raise InvalidInputError("out_indices selects the maps of a features_only model: pass features_only=True")
    options = {key: kwargs.pop(key) for key in model_cls.build_options if key in kwargs}
    model = model_cls(config_for_keypoints(model_cls.variants[name], keypoint_spec, **kwargs), keypoint_spec)
    model.model_name = name
    model.apply_build_options(bool(pretrained), **options)
    if features_only:
        return load_pretrained(FeatureListNet(model, out_indices, model.head_modules), name, pretrained)
    return load_pretrained(model, name, pretrained)
