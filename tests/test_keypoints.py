import pytest

from posecommon import COCO17, KeypointSpec, generic_keypoint_spec


def test_coco17_metadata():
    assert COCO17.num_joints == 17
    assert COCO17.names[0] == "nose"
    assert all(COCO17.flip_indices[COCO17.flip_indices[k]] == k for k in range(17))
    assert COCO17.names[COCO17.flip_indices[COCO17.names.index("left_wrist")]] == "right_wrist"
    assert len(COCO17.skeleton) == 19
    assert COCO17.sigmas is not None and len(COCO17.sigmas) == 17
    assert (5, 6) in COCO17.flip_pairs and len(COCO17.flip_pairs) == 8


def test_flip_permutation_must_be_its_own_inverse():
    with pytest.raises(ValueError, match="own inverse"):
        KeypointSpec("bad", ("a", "b", "c"), (), (1, 2, 0))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"flip_indices": (0, 0, 1)}, "permutation"),
        ({"flip_indices": (0, 1)}, "entries"),
        ({"skeleton": ((0, 3),)}, "out of range"),
        ({"sigmas": (0.1, 0.1)}, "sigmas"),
        ({"sigmas": (0.1, -0.1, 0.1)}, "positive"),
        ({"names": ("a", "a", "b")}, "unique"),
    ],
)
def test_invalid_specs_are_rejected(kwargs, message):
    base = {"name": "x", "names": ("a", "b", "c"), "skeleton": ((0, 1),), "flip_indices": (0, 2, 1)}
    with pytest.raises(ValueError, match=message):
        KeypointSpec(**{**base, **kwargs})


def test_from_flip_pairs_rejects_overlapping_pairs():
    with pytest.raises(ValueError, match="more than one flip pair"):
        KeypointSpec.from_flip_pairs("x", ("a", "b", "c"), (), ((0, 1), (1, 2)))


def test_round_trip_through_dict():
    assert KeypointSpec.from_dict(COCO17.to_dict()) == COCO17


def test_generic_spec_for_custom_joint_count():
    spec = generic_keypoint_spec(5)
    assert spec.num_joints == 5 and spec.sigmas is None and spec.flip_pairs == ()
    with pytest.raises(ValueError):
        generic_keypoint_spec(0)
