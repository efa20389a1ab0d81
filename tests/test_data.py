"""Datasets: built-in sample split, crops, whole-image validation, clear errors."""
import re

import pytest
import torch
from PIL import Image

from trainable.data import SPLITS, DataError, ImageFolder, read_rgb, resolve_dataset, sample_dataset_dir
from trainable.data.sample import _write_split


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    """One cache per session (the sample is written once), never under ~."""
    monkeypatch.setenv("HPCM_TUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_sample_splits_are_disjoint_rgb_pngs_and_the_default():
    train, val = sample_dataset_dir("train"), sample_dataset_dir("val")
    names = {split: sorted(p.name for p in folder.iterdir()) for split, folder in (("train", train), ("val", val))}
    assert names == {split: sorted(f"{n}.png" for n in SPLITS[split]) for split in SPLITS}
    assert not set(names["train"]) & set(names["val"])
    for path in [*train.iterdir(), *val.iterdir()]:
        with Image.open(path) as img:
            assert img.format == "PNG" and img.mode == "RGB"
    assert resolve_dataset(None, "val") == val == resolve_dataset("sample", "val")
    with pytest.raises(DataError, match="unknown sample split 'test'"):
        sample_dataset_dir("test")


def test_sample_cache_is_idempotent_and_a_lost_race_is_harmless(tmp_path):
    first = sample_dataset_dir("val", root=tmp_path)
    stamp = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    assert sample_dataset_dir("val", root=tmp_path) == first == tmp_path / "val"
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == stamp   # not rewritten
    _write_split("val", first)   # another process finishing after us: its copy is discarded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["val"]   # no temp folders left
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == stamp


def test_unwritable_cache_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DataError, match=f"cannot write sample dataset to {re.escape(str(blocker))}"):
        sample_dataset_dir("val", root=blocker)


def test_training_crops_are_deterministic_patches():
    train = ImageFolder(sample_dataset_dir("train"), patch_size=128)
    torch.manual_seed(3)
    a = [train[i] for i in range(3)]
    torch.manual_seed(3)
    assert all(torch.equal(x, train[i]) for i, x in enumerate(a))
    torch.manual_seed(4)
    assert not all(torch.equal(x, train[i]) for i, x in enumerate(a))
    assert all(x.shape == (3, 128, 128) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 for x in a)


def test_validation_items_are_whole_odd_sized_images():
    val = ImageFolder(sample_dataset_dir("val"), patch_size=64, train=False)
    sizes = {f.stem: tuple(val[i].shape) for i, f in enumerate(val.files)}
    assert sizes == {"chelsea": (3, 300, 451), "colorwheel": (3, 370, 371), "logo": (3, 500, 500)}


def test_small_greyscale_and_rgba_images_yield_full_patches(tmp_path):
    Image.new("L", (40, 30), 128).save(tmp_path / "grey.PNG")
    Image.new("RGBA", (64, 64), (10, 20, 30, 0)).save(tmp_path / "rgba.png")
    (tmp_path / "notes.txt").write_text("not an image")
    ds = ImageFolder(tmp_path, patch_size=48)
    assert [f.name for f in ds.files] == ["grey.PNG", "rgba.png"]
    assert [tuple(ds[i].shape) for i in range(2)] == [(3, 48, 48), (3, 48, 48)]
    assert torch.allclose(read_rgb(tmp_path / "grey.PNG"), torch.tensor(128 / 255))


def test_missing_and_empty_datasets_name_the_path(tmp_path):
    with pytest.raises(DataError, match=f"dataset directory not found: {re.escape(str(tmp_path / 'nope'))}"):
        ImageFolder(tmp_path / "nope")
    with pytest.raises(DataError, match=f"dataset directory not found: {re.escape(str(tmp_path / 'nope'))}"):
        resolve_dataset(str(tmp_path / "nope"), "train")
    with pytest.raises(DataError, match=f"no images found in {re.escape(str(tmp_path))}"):
        ImageFolder(tmp_path)
    assert resolve_dataset(str(tmp_path), "train") == tmp_path


def test_corrupt_image_is_found_by_verify_and_named_on_load(tmp_path):
    Image.new("RGB", (32, 32)).save(tmp_path / "good.png")
    (tmp_path / "x.png").write_bytes(b"\x89PNG garbage")
    ds = ImageFolder(tmp_path, patch_size=16)
    bad = tmp_path / "x.png"
    with pytest.raises(DataError, match=f"corrupt image: {re.escape(str(bad))} \\(") as info:
        ds.verify()
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match=f"corrupt image: {re.escape(str(bad))}"):
        ds[ds.files.index(bad)]
    assert ds[ds.files.index(tmp_path / "good.png")].shape == (3, 16, 16)
