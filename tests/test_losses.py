import torch

from posecommon.losses import KeypointMSELoss


def test_perfect_prediction_is_the_minimum_and_gradients_point_to_the_target():
    target = torch.rand(2, 3, 8, 6)
    weight = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    loss_fn = KeypointMSELoss()
    assert loss_fn(target, target, weight) == 0
    pred = (target + 0.1).requires_grad_(True)
    loss = loss_fn(pred, target, weight)
    assert loss > 0
    loss.backward()
    assert (pred.grad[0, 0] > 0).all()  # prediction above the target: gradient pushes it down
    assert (pred.grad[0, 1] == 0).all()  # zero-weight joint gets no gradient


def test_hand_computed_value_and_unweighted_mode():
    pred = torch.zeros(1, 2, 2, 2)
    target = torch.ones(1, 2, 2, 2)
    weight = torch.tensor([[1.0, 0.0]])
    assert KeypointMSELoss()(pred, target, weight).item() == 0.5 * 4 / 8
    assert KeypointMSELoss(use_target_weight=False)(pred, target, weight).item() == 0.5
