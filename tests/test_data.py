"""Datasets: built-in sample split, crops, whole-image validation, clear errors."""
import pytest
import torch
from PIL import Image

from trainable.data import DataError, ImageFolder, resolve_dataset, sample_dataset_dir


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HPCM_TUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_sample_splits_exist_are_disjoint_and_default():
    train, val = sample_dataset_dir("train"), sample_dataset_dir("val")
    names_t = {p.name for p in train.iterdir()}
    names_v = {p.name for p in val.iterdir()}
    assert len(names_t) >= 8 and len(names_v) >= 2 and not names_t & names_v
    assert resolve_dataset(None, "val") == val == resolve_dataset("sample", "val")
    assert sample_dataset_dir("val") == val   # idempotent
    with pytest.raises(DataError, match="unknown sample split"):
        sample_dataset_dir("test")


def test_training_crops_are_deterministic_patches_and_validation_is_whole():
    train = ImageFolder(sample_dataset_dir("train"), patch_size=128)
    torch.manual_seed(3)
    a = train[0]
    torch.manual_seed(3)
    assert torch.equal(a, train[0])
    assert a.shape == (3, 128, 128) and 0 <= a.min() and a.max() <= 1
    val = ImageFolder(sample_dataset_dir("val"), train=False)
    sizes = {tuple(val[i].shape[-2:]) for i in range(len(val))}
    assert (300, 451) in sizes   # chelsea keeps its odd size


def test_small_greyscale_and_rgba_images(tmp_path):
    Image.new("L", (40, 30), 128).save(tmp_path / "grey.png")
    Image.new("RGBA", (64, 64), (10, 20, 30, 0)).save(tmp_path / "rgba.png")
    ds = ImageFolder(tmp_path, patch_size=48)
    assert [tuple(ds[i].shape) for i in range(2)] == [(3, 48, 48), (3, 48, 48)]


def test_missing_empty_and_corrupt_datasets_name_the_path(tmp_path):
    with pytest.raises(DataError, match="dataset directory not found: .*nope"):
        ImageFolder(tmp_path / "nope")
    with pytest.raises(DataError, match=f"no images found in {tmp_path}"):
        ImageFolder(tmp_path)
    Image.new("RGB", (32, 32)).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    ds = ImageFolder(tmp_path, patch_size=16)
    with pytest.raises(DataError, match="corrupt image: .*bad.png"):
        ds.verify()
    with pytest.raises(DataError, match="bad.png"):
        ds[0]
