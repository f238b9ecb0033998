"""Fine-tune VTTransPose on a COCO-format folder, optionally with a subset of the COCO keypoints.

The folder uses COCO's layout::

    DATA/annotations/person_keypoints_train.json    DATA/train/<images>
    DATA/annotations/person_keypoints_val.json      DATA/val/<images>

``--make-synthetic`` first writes such a folder with posezoo's synthetic generator (annotated with exactly the
chosen joints). ``--joints`` picks the keypoint set: a subset of the COCO-17 names builds a
:class:`posecommon.KeypointSpec` with the matching skeleton, left/right pairs and OKS sigmas, and the model gets a
head with that many heatmaps. ``--init`` starts from a 17-keypoint safetensors file (or ``save_pretrained``
directory): everything but the keypoint head is loaded strictly, the head starts fresh.

    python examples/finetune_coco_folder.py --data data/mini --make-synthetic --out runs/upper_body \
        --joints nose left_shoulder right_shoulder left_elbow right_elbow left_wrist right_wrist --steps 300

The run directory holds ``checkpoints/last`` (re-running resumes), ``metrics.jsonl``, ``train_config.json`` and
``final/`` (a ``save_pretrained`` directory that ``PoseModel.from_pretrained`` reloads).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from posecommon import COCO17, KeypointSpec, PoseModel, TrainConfig, Trainer, create_model
from posecommon.data import generate_synthetic_splits
from posecommon.evaluation import evaluate_model

UPPER_BODY = ("nose", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist")


def coco_subset(names: list[str]) -> KeypointSpec:
    """A keypoint spec for some COCO-17 joints, in the given order, keeping limbs, flip pairs and sigmas."""
    unknown = [n for n in names if n not in COCO17.names]
    if unknown:
        raise SystemExit(f"not COCO-17 joint names: {unknown}; choose from {list(COCO17.names)}")
    index = {name: i for i, name in enumerate(names)}
    old = [COCO17.names.index(n) for n in names]
    skeleton = [
        (index[COCO17.names[a]], index[COCO17.names[b]])
        for a, b in COCO17.skeleton
        if COCO17.names[a] in index and COCO17.names[b] in index
    ]
    partner = {n: COCO17.names[COCO17.flip_indices[i]] for n, i in zip(names, old, strict=True)}
    flip = [index.get(partner[n], index[n]) for n in names]  # a joint whose partner is missing maps to itself
    sigmas = [COCO17.sigmas[i] for i in old]
    return KeypointSpec(f"coco_subset{len(names)}", tuple(names), tuple(skeleton), tuple(flip), tuple(sigmas))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="COCO-format folder (see above)")
    parser.add_argument("--make-synthetic", action="store_true", help="generate a synthetic folder at --data first")
    parser.add_argument("--synthetic-train", type=int, default=200)
    parser.add_argument("--synthetic-val", type=int, default=20)
    parser.add_argument("--synthetic-size", type=int, default=256)
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--val-split", default="val")
    parser.add_argument("--joints", nargs="+", default=list(UPPER_BODY), help="COCO-17 joint names to predict")
    parser.add_argument("--model", default="vttranspose_h_s")
    parser.add_argument("--init", default=None, help="17-keypoint weights to start from (file or directory)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), default=(256, 192))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=0, help="evaluate every N steps (0: at the end)")
    parser.add_argument("--max-eval-images", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--out", required=True, help="run directory")
    args = parser.parse_args(argv)

    spec = COCO17 if list(args.joints) == list(COCO17.names) else coco_subset(args.joints)
    root = Path(args.data)
    if args.make_synthetic:
        side = args.synthetic_size
        generate_synthetic_splits(
            root, args.synthetic_train, args.synthetic_val, keypoint_spec=spec, image_size=(side, side)
        )
    train_ann = root / "annotations" / f"person_keypoints_{args.train_split}.json"
    val_ann = root / "annotations" / f"person_keypoints_{args.val_split}.json"
    train_images, val_images = root / args.train_split, root / args.val_split

    init = args.init
    if init is not None and Path(init).is_dir():
        init = str(Path(init) / "model.safetensors")  # the weights of a save_pretrained directory
    model = create_model(
        args.model,
        pretrained=init or False,
        num_joints=spec.num_joints,
        keypoint_spec=spec,
        input_size=tuple(args.input_size),
    )
    if model.pretrained_report is not None:
        report = model.pretrained_report
        print(f"initialised from {report.source}: {report.loaded} entries loaded, fresh head {list(report.skipped)}")
    print(f"{args.model}: {spec.num_joints} keypoints {list(spec.names)}, input {tuple(args.input_size)}")

    config = TrainConfig(
        total_steps=args.steps,
        batch_size=args.batch_size,
        optimizer="adam",
        lr=args.lr,
        lr_final=args.lr / 100,
        eval_every=args.eval_every,
    )
    dataset = model.training_dataset(train_ann, train_images, train=True)  # TopDownCocoDataset for this spec

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        stats, _ = evaluate_model(m, val_ann, val_images, max_images=args.max_eval_images, progress=False)
        return stats  # ground-truth boxes; OKS with the spec's sigmas

    trainer = Trainer(
        model, dataset, model.training_task(args.batch_size), config, args.out, evaluate=evaluate, device=args.device
    )
    result = trainer.fit()  # resumes from the newest checkpoint in OUT/checkpoints/ when there is one
    if result.losses:
        print(
            f"trained steps {result.step - len(result.losses) + 1}-{result.step}: "
            f"loss {result.losses[0]:.6f} -> {result.losses[-1]:.6f}"
        )
    for evaluation in result.evaluations:
        print(f"step {evaluation['step']}: AP {evaluation['AP']:.3f} AP50 {evaluation['AP50']:.3f}")

    final = Path(args.out) / "final"
    reloaded = PoseModel.from_pretrained(final)
    print(
        f"reloaded {final}: {reloaded.model_name} with {reloaded.keypoint_spec.num_joints} keypoints "
        f"{list(reloaded.keypoint_spec.names)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
