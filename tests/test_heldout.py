"""The test set is provably held out: ``analysis.evaluate`` refuses, before coding anything, a test
folder that shares an image (by pixels, whatever its name or lossless format) with the
experiment's training or validation folder, and records the check it made."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from analysis.evaluate import main as evaluate_main
from tests.test_evaluate import copy_experiment, evaluated_experiment_dir, real_experiment_dir


@pytest.fixture
def fixture_dir(tmp_path_factory) -> Path:
    return real_experiment_dir(tmp_path_factory)


@pytest.fixture
def experiment(fixture_dir, tmp_path) -> Path:
    return copy_experiment(fixture_dir / "exp", tmp_path / "exp")


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def _record(experiment: Path, **info) -> None:
    """experiment.json as an older search.run wrote it: no ``datasets``, only the search settings."""
    (experiment / "experiment.json").write_text(json.dumps({"name": "fixture", **info}))


def _copy(source: Path, target: Path, fmt: str | None) -> None:
    if fmt is None:
        shutil.copyfile(source, target)
    else:   # another lossless format: other bytes, the same pixels
        with Image.open(source) as img:
            img.save(target, format=fmt)
        assert target.read_bytes() != source.read_bytes()


@pytest.mark.parametrize("split, source, name, fmt", [
    ("val", "img0.png", "holiday.png", None),      # a validation image under another name
    ("train", "img2.png", "scan.bmp", "BMP"),      # a training image in another format
    ("val", "img1.png", "sub/x.tif", "TIFF"),      # in a subfolder
])
@pytest.mark.parametrize("recorded", ["datasets", "val_dataset", "test_dataset"])
def test_a_test_set_sharing_an_image_is_refused(experiment, fixture_dir, tmp_path, capsys, split, source, name,
                                                fmt, recorded):
    data = fixture_dir / "data"
    if recorded != "datasets":   # older experiments: the settings (test_dataset named the validation folder)
        _record(experiment, train_dataset=str(data / "train"), **{recorded: str(data / "val")})
    test = shutil.copytree(data / "test", tmp_path / "test")
    (test / name).parent.mkdir(exist_ok=True)
    _copy(data / split / source, test / name, fmt)
    assert evaluate_main([str(experiment), "--dataset", str(test), "--top", "0"]) == 2
    err = _one_line(capsys)
    kind = {"train": "training", "val": "validation"}[split]
    assert "the test set is not held out" in err and name.split("/")[-1] in err and source in err
    assert f"of the {kind} set" in err
    assert not (experiment / "evaluation").exists()   # refused before anything was coded


def test_the_validation_folder_itself_is_refused(experiment, fixture_dir, capsys):
    assert evaluate_main([str(experiment), "--dataset", str(fixture_dir / "data" / "val")]) == 2
    assert "(and 1 more test image(s))" in _one_line(capsys)


def test_the_builtin_splits_are_held_out():
    from analysis.heldout import check_held_out, used_datasets
    from trainable.data import SPLITS, dataset_manifest, sample_dataset_dir

    used = used_datasets({"train_dataset": None, "test_dataset": None}, Path("exp"))
    assert used == {"train": sample_dataset_dir("train"), "val": sample_dataset_dir("val")}
    record = check_held_out(dataset_manifest(sample_dataset_dir("test")), used)
    assert record["checked"] and record["shared"] == 0
    assert record["test"]["images"] == record["test"]["distinct"] == len(SPLITS["test"])
    assert [(c["split"], c["images"], c["distinct"]) for c in record["compared"]] == [
        ("train", len(SPLITS["train"]), len(SPLITS["train"])), ("val", len(SPLITS["val"]), len(SPLITS["val"]))]


def test_evaluation_json_records_the_check(tmp_path_factory):
    exp = evaluated_experiment_dir(tmp_path_factory) / "exp"
    data = real_experiment_dir(tmp_path_factory) / "data"
    held_out = json.loads((exp / "evaluation" / "evaluation.json").read_text())["held_out"]
    assert held_out["checked"] is True and held_out["shared"] == 0 and "pixels" in held_out["method"]
    assert held_out["test"] == {"folder": str(data / "test"), "images": 3, "distinct": 3}
    assert held_out["compared"] == [
        {"split": split, "folder": str(data / split), "images": n, "distinct": n}
        for split, n in (("train", len(list((data / "train").iterdir()))), ("val", len(list((data / "val").iterdir()))))]


def test_training_folder_elsewhere_needs_its_new_place(experiment, fixture_dir, tmp_path, capsys):
    from analysis.heldout import used_datasets

    data = fixture_dir / "data"
    info = json.loads((experiment / "experiment.json").read_text())
    moved = tmp_path / "gone" / "train"
    info["datasets"]["train"] = str(moved)
    (experiment / "experiment.json").write_text(json.dumps(info))
    assert evaluate_main([str(experiment), "--top", "0"]) == 2
    err = _one_line(capsys)
    assert f"the training folder {moved} (experiment.json) is not on this machine" in err and "--train-dataset" in err
    copy = shutil.copytree(data / "train", tmp_path / "copy")
    assert used_datasets(info, experiment, {"train": str(copy)}) == {"train": copy, "val": data / "val"}
    (experiment / "experiment.json").unlink()
    assert evaluate_main([str(experiment), "--top", "0"]) == 2
    assert "no experiment.json" in _one_line(capsys)


def test_recorded_test_folder_elsewhere_needs_dataset(experiment, tmp_path, capsys):
    info = json.loads((experiment / "experiment.json").read_text())
    info["datasets"]["test"] = str(tmp_path / "gone")
    (experiment / "experiment.json").write_text(json.dumps(info))
    assert evaluate_main([str(experiment)]) == 2
    assert f"the test folder {tmp_path / 'gone'} (experiment.json) is not on this machine; pass --dataset DIR" in \
        _one_line(capsys)
