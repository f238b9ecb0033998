"""``posezoo train --init-weights``: YOLO-Pose's ``--weights`` start (``train.py:83-93``), loading by name and shape."""

import pickle

import pytest
import torch
from safetensors.torch import save_file

from drsinet import drsi_net_s
from posecommon.errors import IncompatibleWeightsError, UnsafeWeightsError, WeightsNotFoundError
from posecommon.hub import init_weights_file, load_intersecting

TINY = dict(width_multiple=0.25, depth_multiple=0.2, input_size=(128, 128))


def test_intersecting_load_takes_what_matches_by_name_and_shape_and_reports_the_rest(tmp_path):
    torch.manual_seed(1)
    source = drsi_net_s(**TINY)  # 17 joints: its keypoint output convolutions have another shape than a 5-joint one
    source.save_pretrained(tmp_path / "saved")
    extra = {**source.state_dict(), "not.a.model.key": torch.zeros(3)}
    save_file({k: v.contiguous() for k, v in extra.items()}, str(tmp_path / "extra.safetensors"))
    torch.manual_seed(2)
    target = drsi_net_s(num_joints=5, **TINY)
    before = {k: v.clone() for k, v in target.state_dict().items()}

    report = load_intersecting(target, tmp_path / "extra.safetensors")

    after, file = target.state_dict(), source.state_dict()
    mismatched = {name for name, _, _ in report.shape_mismatch}
    assert mismatched == {k for k in after if k.startswith("head.kpt_out.")} and mismatched
    assert report.not_in_model == ("not.a.model.key",) and report.not_in_file == ()
    assert set(report.loaded) == set(after) - mismatched and report.model_entries == len(after)
    for name in after:
        expected = before[name] if name in mismatched else file[name]
        assert torch.equal(after[name], expected), name
    text = report.format()
    assert text.startswith(f"init weights: transferred {len(after) - len(mismatched)}/{len(after)} items from ")
    assert "head.kpt_out.0.weight (file (153, " in text and "not.a.model.key" in text
    # a save_pretrained directory (what `posezoo convert` writes) and a run directory's final/ name the same file
    assert init_weights_file(tmp_path / "saved") == tmp_path / "saved" / "model.safetensors"
    (tmp_path / "run").mkdir()
    (tmp_path / "saved").rename(tmp_path / "run" / "final")
    assert init_weights_file(tmp_path / "run") == tmp_path / "run" / "final" / "model.safetensors"
    assert load_intersecting(drsi_net_s(**TINY), tmp_path / "run").summary()["transferred"] == len(file)


def test_init_weights_refuses_pickles_missing_files_and_files_of_another_model(tmp_path):
    model = drsi_net_s(**TINY)
    (tmp_path / "last.pt").write_bytes(pickle.dumps({"model": 1}, protocol=2))
    with pytest.raises(UnsafeWeightsError, match="never unpickles"):
        load_intersecting(model, tmp_path / "last.pt")
    with pytest.raises(WeightsNotFoundError, match="posezoo convert"):
        load_intersecting(model, tmp_path / "missing")
    save_file({"conv.weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(IncompatibleWeightsError, match="none of its 1 tensors"):
        load_intersecting(model, tmp_path / "other.safetensors")


@pytest.mark.slow
def test_train_command_initialises_from_saved_weights_and_a_resume_checks_them(tmp_path, capsys):
    import json

    from posecommon.app.cli import main
    from vttranspose import transpose_h_s

    for seed, name in ((0, "start"), (1, "other")):
        torch.manual_seed(seed)
        transpose_h_s(input_size=(64, 48)).save_pretrained(tmp_path / name)  # the HRNet parts are shared
    run = tmp_path / "run"
    args = ["train", "vttranspose_h_s", "--out", str(run), "--batch-size", "2", "--input-size", "64", "48"]
    args += ["--synthetic-train", "4", "--synthetic-val", "2", "--synthetic-image-size", "96", "96", "--steps", "1"]
    assert main([*args, "--init-weights", str(tmp_path / "start")]) == 0
    out = capsys.readouterr().out
    assert "init weights: transferred " in out and "keep their fresh initialisation" in out
    summary = json.loads((run / "summary.json").read_text())["init_weights"]
    assert summary["transferred"] > 0 and summary["not_in_file"] > 0 and summary["not_in_model"] > 0
    assert main([*args, "--init-weights", str(tmp_path / "other")]) == 2  # resuming it from another start
    assert "init_weights_sha256" in capsys.readouterr().err
