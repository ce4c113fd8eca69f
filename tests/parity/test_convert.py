"""The .pdparams reader refuses what is not weights, and conversion names every tensor that does
not fit, before touching the model."""
import json
import pathlib
import pickle

import numpy as np
import pytest

from tests.parity.seeded_weights import seeded_state
from tfdet.convert import (ConversionError, WeightFileError, build_for_paddle, convert_state,
                           read_pdparams, read_static_params)

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def test_reads_a_file_written_by_paddle_save():
    # pdparams_sample.pdparams: paddle.save of Conv2D(3, 4, 3) + BatchNorm2D(4) in ppdet's venv.
    state = read_pdparams(FIXTURES / "pdparams_sample.pdparams")
    assert {k: v.shape for k, v in state.items()} == {
        "0.weight": (4, 3, 3, 3), "0.bias": (4,), "1.weight": (4,), "1.bias": (4,),
        "1._mean": (4,), "1._variance": (4,)}
    assert all(v.dtype == np.float32 for v in state.values())


def test_reads_the_static_graph_format_written_by_save_vars(tmp_path):
    # static_vars/: paddle.static.save_vars (paddlepaddle 3.3.1, FLAGS_enable_pir_api=0), one
    # file per variable as in the static zoo's .tar; static_vars.npz: the values paddle held.
    expected = dict(np.load(FIXTURES / "static_vars.npz"))
    assert set(expected) == {"res2a_branch2a_weights", "bn2a_branch2a_scale",
                             "bn2a_branch2a_offset", "bn2a_branch2a_mean",
                             "bn2a_branch2a_variance"}
    folder = read_static_params(FIXTURES / "static_vars")
    import tarfile
    archive = tmp_path / "ResNet50_cos_pretrained.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(FIXTURES / "static_vars", arcname="ResNet50_cos_pretrained")
    for state in (folder, read_static_params(archive)):
        assert set(state) == set(expected)
        for name, value in expected.items():
            assert state[name].dtype == value.dtype and state[name].shape == value.shape
            np.testing.assert_array_equal(state[name], value)
    broken = tmp_path / "broken"
    broken.mkdir()
    data = (FIXTURES / "static_vars" / "res2a_branch2a_weights").read_bytes()
    (broken / "res2a_branch2a_weights").write_bytes(data[:-4])
    with pytest.raises(WeightFileError, match=r"broken/res2a_branch2a_weights: 428 bytes of "
                                              r"data for shape \[4, 3, 3, 3\]"):
        read_static_params(broken)
    (broken / "res2a_branch2a_weights").write_bytes(data[:10])
    with pytest.raises(WeightFileError, match="truncated Paddle tensor header"):
        read_static_params(broken)
    not_tar = tmp_path / "model.tar"
    not_tar.write_bytes(b"nothing here")
    with pytest.raises(WeightFileError, match="not a folder or tar of Paddle variables"):
        read_static_params(not_tar)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_refuses_a_pickle_that_would_run_code(tmp_path):
    marker = tmp_path / "ran"
    bad = tmp_path / "evil.pdparams"
    bad.write_bytes(pickle.dumps({"w": np.zeros(2), "x": _RunsCode(marker)}))
    with pytest.raises(WeightFileError, match=r"evil\.pdparams: refuses to load pathlib"):
        read_pdparams(bad)
    assert not marker.exists()


@pytest.mark.parametrize("content, message", [
    (b"not a pickle at all", "not a .pdparams pickle"),
    (b"PK\x03\x04rest", "zip archive"),
    (pickle.dumps([np.zeros(2)]), "top level is list"),
    (pickle.dumps({"w": 3.0}), "w is float, not an array"),
])
def test_refuses_files_that_are_not_weights(tmp_path, content, message):
    path = tmp_path / "w.pdparams"
    path.write_bytes(content)
    with pytest.raises(WeightFileError, match=message):
        read_pdparams(path)
    with pytest.raises(WeightFileError, match="cannot read"):
        read_pdparams(tmp_path / "absent.pdparams")


def test_conversion_names_missing_extra_and_misshapen_tensors():
    manifest = json.loads((FIXTURES / "retinanet_r50_fpn_1x_coco.json").read_text())
    state = seeded_state(manifest["shapes"], 0)
    model, spec = build_for_paddle("retinanet_r50_fpn_1x_coco")
    before = [w.numpy().copy() for w in model.weights[:3]]
    broken = dict(state)
    del broken["neck.fpn_6.weight"]
    broken["head.extra.weight"] = np.zeros((2, 2), np.float32)
    broken["head.retina_reg.bias"] = np.zeros(35, np.float32)
    with pytest.raises(ConversionError) as info:
        convert_state(broken, model, spec.family, "w.pdparams")
    text = str(info.value)
    assert "missing Paddle tensor neck.fpn_6.weight" in text
    assert "unused Paddle tensor head.extra.weight" in text
    assert "shape mismatch for head/box_out/bias" in text
    assert text.startswith("w.pdparams: ")
    assert all((w.numpy() == b).all() for w, b in zip(model.weights[:3], before))
    # The static zoo's architecture (P6 from C5) does not fit ppdet 2.x weights.
    with pytest.raises(ConversionError, match="shape mismatch for fpn_extra6/kernel"):
        from tfdet import models
        static = models.get("retinanet_r50_fpn_1x")
        convert_state(state, static, "retinanet")
