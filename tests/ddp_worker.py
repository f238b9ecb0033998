"""Run under torchrun: trains the tiny model with DDP (gloo, CPU) and saves each rank's weights."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from posecommon.train import TrainConfig, Trainer
from tests.train_fixtures import NoisyRegression, RegressionTask, tiny_model


def main(out_dir: str, steps: int) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    config = TrainConfig(total_steps=steps, batch_size=8, optimizer="sgd", lr=0.05, lr_final=0.01, momentum=0.9)
    trainer = Trainer(tiny_model(), NoisyRegression(), RegressionTask(), config, Path(out_dir) / "run", device="cpu")
    trainer.fit(resume=False)
    state = {k: v.contiguous() for k, v in trainer.model.state_dict().items()}
    save_file(state, str(Path(out_dir) / f"rank{rank}.safetensors"))
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1], int(sys.argv[2]))
