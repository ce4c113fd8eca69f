"""The .pdparams reader refuses what is not weights, and conversion names every tensor that does
not fit, before touching the model."""
import json
import pathlib
import pickle

import numpy as np
import pytest

from tests.parity.seeded_weights import seeded_state
from tfdet.convert import (ConversionError, WeightFileError, build_for_paddle, convert_state,
                           load_paddle_backbone, read_pdparams, read_static_params)

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


def _fixture_state(row):
    manifest = json.loads((FIXTURES / f"{row}.json").read_text())
    return seeded_state(manifest["shapes"], manifest["seed"],
                        {k: tuple(v) for k, v in manifest["overrides"].items()})


@pytest.mark.parametrize("row,paddle_row,res5_prefix", [
    ("faster_rcnn_r50_vd_fpn_2x", "faster_rcnn_r50_vd_fpn_2x_coco", None),
    ("faster_rcnn_r50_1x", "faster_rcnn_r50_1x_coco", "bbox_head.head."),
    ("yolov3_darknet53", "yolov3_darknet53_270e_coco", None)])
def test_imagenet_backbone_pdparams_initialise_only_the_backbone(tmp_path, row, paddle_row,
                                                                  res5_prefix):
    """A backbone checkpoint as ppdet's pretrain_weights name it (no `backbone.` prefix, plus
    an ImageNet classifier) goes through models.get(weights=...): the backbone's variables take
    exactly what the whole-model conversion gives them, everything else keeps its values."""
    from tfdet import models
    from tfdet.convert import write_pdparams
    full = _fixture_state(paddle_row)
    backbone = {k[len("backbone."):]: v for k, v in full.items() if k.startswith("backbone.")}
    if res5_prefix:  # C4: ppdet's ImageNet file keeps res5 with the backbone
        backbone.update({k[len(res5_prefix):]: v for k, v in full.items()
                         if k.startswith(res5_prefix + "res5.")})
    backbone["fc.weight"] = np.ones((2048, 1000), np.float32)  # the ImageNet classifier
    path = tmp_path / "ResNet50_pretrained.pdparams"
    write_pdparams(backbone, path)
    reference, spec = build_for_paddle(paddle_row)
    expected = convert_state(full, reference, spec.family)
    model = models.get(row)
    before = {w.path: w.numpy() for w in model.weights}
    report = load_paddle_backbone(model, str(path))
    assert report["unused"] == ["fc.weight"]
    changed = {w.path for w in model.weights if not np.array_equal(w.numpy(), before[w.path])}
    layers = {p.split("/")[0] for p in changed}
    assert len(changed) == report["assigned"] > 50
    assert all(n.startswith(("stem", "res", "stage")) for n in layers), layers
    assert any(n.startswith("res5") for n in layers) == (res5_prefix is not None or
                                                         row.startswith("faster_rcnn_r50_vd"))
    for w in model.weights:
        if w.path in changed:
            np.testing.assert_allclose(w.numpy(), expected[w.path], rtol=1e-6, err_msg=w.path)
    # The same through models.get(weights=...) (and so ModelConfig.weights / train.py).
    again = models.get(row, weights=str(path))
    for w in again.weights:
        if w.path in changed:
            np.testing.assert_allclose(w.numpy(), expected[w.path], rtol=1e-6, err_msg=w.path)


def test_backbone_pdparams_errors_name_the_problem(tmp_path):
    from tfdet import models
    from tfdet.convert import write_pdparams
    full = _fixture_state("faster_rcnn_r50_vd_fpn_2x_coco")
    whole = tmp_path / "whole.pdparams"
    write_pdparams(full, whole)
    with pytest.raises(ConversionError, match="whole detector.*convert_weights.py"):
        models.get("faster_rcnn_r50_vd_fpn_2x", weights=str(whole))
    backbone = {k[len("backbone."):]: v for k, v in full.items()
                if k.startswith("backbone.") and "res3.res3b" not in k}
    partial = tmp_path / "partial.pdparams"
    write_pdparams(backbone, partial)
    with pytest.raises(ConversionError, match="missing Paddle tensor backbone.res3.res3b"):
        models.get("faster_rcnn_r50_vd_fpn_2x", weights=str(partial))
