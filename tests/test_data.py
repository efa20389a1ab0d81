"""Datasets: built-in sample splits, the verified manifest, crops, whole-image validation, clear errors."""
import re

import numpy as np
import pytest
import torch
from PIL import Image

from trainable.data import (
    SPLITS, DataError, ImageFolder, dataset_manifest, read_rgb, resolve_dataset, sample_dataset_dir, verify_dataset,
)
from trainable.data.manifest import decode_count, manifest_path
from trainable.data.sample import _write_split


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    """One cache per session (the sample is written once), never under ~."""
    monkeypatch.setenv("HPCM_TUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_sample_splits_are_disjoint_rgb_pngs_and_the_default():
    folders = {split: sample_dataset_dir(split) for split in ("train", "val", "test")}
    names = {split: sorted(p.name for p in folder.iterdir()) for split, folder in folders.items()}
    assert names == {split: sorted(f"{n}.png" for n in SPLITS[split]) for split in SPLITS}
    assert not set(names["train"]) & set(names["val"]) and not set(names["test"]) & (set(names["train"]) | set(names["val"]))
    for path in [p for folder in folders.values() for p in folder.iterdir()]:
        with Image.open(path) as img:
            assert img.format == "PNG" and img.mode == "RGB"
    for split in folders:
        assert resolve_dataset(None, split) == folders[split] == resolve_dataset("sample", split)
    with pytest.raises(DataError, match="unknown sample split 'nope'"):
        sample_dataset_dir("nope")


def test_test_split_is_small_natural_and_exercises_padding():
    manifest = dataset_manifest(sample_dataset_dir("test"))
    sizes = {path.stem: size for path, size in zip(manifest.files, manifest.sizes)}
    assert sizes == {"motorcycle": (741, 500), "coins": (384, 303), "clock": (400, 300), "page": (384, 191)}
    assert all(w % 64 or h % 64 for w, h in sizes.values()) and all(min(s) >= 161 for s in sizes.values())
    assert sum(w * h for w, h in sizes.values()) < 800_000   # ~10 Tiny models code it in seconds on a CPU


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


# --- the dataset manifest ------------------------------------------------------------------------

def _images(folder, count, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", size, (i * 7 % 256, 20, 30)).save(folder / f"{i:03d}.png")
    return folder


def test_manifest_decodes_once_and_again_only_what_changed(tmp_path):
    folder = _images(tmp_path / "set", 12)
    (folder / "sub").mkdir()
    Image.new("L", (17, 9)).save(folder / "sub" / "grey.JPG")
    before = decode_count()
    files = verify_dataset(folder)
    assert decode_count() - before == 13 and files == ImageFolder(folder).files
    assert manifest_path(folder.absolute()).is_file()
    before = decode_count()
    assert verify_dataset(folder) == files and decode_count() == before      # unchanged: nothing decoded
    ImageFolder(folder, patch_size=8).verify()                                # what every trial calls
    ImageFolder(folder, train=False).verify()
    assert decode_count() == before
    Image.new("RGB", (50, 20)).save(folder / "003.png")                       # rewritten: new size and mtime
    Image.new("RGB", (8, 8)).save(folder / "new.png")
    (folder / "000.png").unlink()
    manifest = dataset_manifest(folder)
    assert decode_count() - before == 2 and manifest.decoded == 2
    sizes = dict(zip((p.name for p in manifest.files), manifest.sizes))
    assert sizes["003.png"] == (50, 20) and sizes["grey.JPG"] == (17, 9) and "000.png" not in sizes


def test_manifest_in_parallel_gives_the_same_answer(tmp_path, monkeypatch):
    folder = _images(tmp_path / "set", 30, size=(64, 48))
    one = dataset_manifest(folder, workers=1)
    monkeypatch.setenv("HPCM_TUNE_CACHE", str(tmp_path / "other-cache"))
    many = dataset_manifest(folder, workers=8)
    assert (many.files, many.sizes) == (one.files, one.sizes) and many.decoded == one.decoded == 30


def test_corrupt_image_is_one_line_naming_it_and_good_files_stay_verified(tmp_path):
    folder = _images(tmp_path / "set", 5)
    bad = folder / "002.png"
    bad.write_bytes(bad.read_bytes()[:60])                                    # truncated
    (folder / "zz.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match=f"corrupt image: {re.escape(str(bad))} \\(.*; 1 more corrupt") as info:
        verify_dataset(folder)
    assert "\n" not in str(info.value)
    Image.new("RGB", (40, 30)).save(bad)
    (folder / "zz.png").unlink()
    before = decode_count()
    assert len(verify_dataset(folder)) == 5 and decode_count() - before == 1  # only the repaired file


def test_unwritable_cache_still_verifies(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("HPCM_TUNE_CACHE", str(blocker))
    folder = _images(tmp_path / "set", 2)
    with pytest.warns(UserWarning, match="dataset manifest not cached"):
        assert len(verify_dataset(folder)) == 2


# --- training crops and the trial's batch stream ---------------------------------------------

def _reference_crop(path, p, seed):
    """Independent of the loader: decode all, to float, replicate-pad, crop, flip (the draw order)."""
    g = torch.Generator().manual_seed(seed)
    with Image.open(path) as img:
        x = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
    h, w = x.shape[-2:]
    x = torch.nn.functional.pad(x[None], (0, max(0, p - w), 0, max(0, p - h)), mode="replicate")[0]
    top = int(torch.randint(0, x.shape[1] - p + 1, (), generator=g))
    left = int(torch.randint(0, x.shape[2] - p + 1, (), generator=g))
    x = x[:, top:top + p, left:left + p]
    if torch.rand((), generator=g) < 0.5:
        x = x.flip(-1)
    if torch.rand((), generator=g) < 0.5:
        x = x.flip(-2)
    return x


def test_crops_taken_before_decoding_all_equal_crops_of_the_whole_image(tmp_path):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (300, 410, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "a.png")                        # decoded only down to the crop
    Image.fromarray(photo).save(tmp_path / "b.jpg", quality=90)           # decoded straight to RGB
    Image.fromarray(photo[:, :, 0]).save(tmp_path / "c.png")              # greyscale
    Image.fromarray(photo).convert("P").save(tmp_path / "d.png")          # palette
    Image.fromarray(photo[:50, :90]).save(tmp_path / "e.png")             # smaller than the patch
    ds = ImageFolder(tmp_path, patch_size=96)
    for i, path in enumerate(ds.files):
        for seed in range(6):
            assert torch.equal(ds[(i, seed)], _reference_crop(path, 96, seed)), (path.name, seed)


def test_the_batch_stream_depends_on_seed_and_epoch_only_not_on_workers_or_resuming():
    from trainable.data import batch_stream

    train = ImageFolder(sample_dataset_dir("train"), patch_size=64)
    from_start = batch_stream(train, 4, 3, seed=5, start_epoch=0, workers=0, pin_memory=False)
    epochs = [[next(from_start) for _ in range(3)] for _ in range(2)]
    resumed = batch_stream(train, 4, 3, seed=5, start_epoch=1, workers=2, pin_memory=False)
    assert all(torch.equal(a, next(resumed)) for a in epochs[1])          # epoch 2 alike, with 2 workers
    assert not torch.equal(epochs[0][0], epochs[1][0])
    assert all(b.shape == (4, 3, 64, 64) for e in epochs for b in e)


def test_a_16_bit_greyscale_ramp_reads_at_its_true_mean_everywhere_a_model_reads_it(tmp_path):
    from trainable.codec import load_image

    ramp = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (192, 1))    # true mean 0.5
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    assert Image.open(tmp_path / "ramp16.png").mode.startswith("I")
    expected = torch.from_numpy(np.rint(ramp / 257.0) / 255.0).float()                 # by hand: 16 → 8 bits
    whole = read_rgb(tmp_path / "ramp16.png")
    assert whole.mean().item() == pytest.approx(0.5, abs=0.002) and torch.allclose(whole[1], expected)
    assert torch.allclose(load_image(tmp_path / "ramp16.png")[0], whole)              # evaluation reads the same
    crop = ImageFolder(tmp_path, patch_size=128)[(0, 3)]
    assert crop.shape == (3, 128, 128) and 0.2 < crop.mean().item() < 0.8               # not near-white
    # the manifest's digest is of what the model sees, so a copy stored as 8-bit RGB is the same image
    Image.fromarray(np.rint(ramp / 257.0).astype(np.uint8)).convert("RGB").save(tmp_path / "ramp8.png")
    digests = dataset_manifest(tmp_path).digests
    assert digests[0] == digests[1]


def test_palette_greyscale_and_alpha_images_read_as_their_rgb(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    palette = Image.fromarray(rgb).convert("P")
    palette.save(tmp_path / "p.png")
    Image.fromarray(np.dstack([rgb, rng.integers(0, 256, (20, 30), dtype=np.uint8)]), "RGBA").save(tmp_path / "a.png")
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "l.png")
    as_float = lambda a: torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)   # noqa: E731
    assert torch.equal(read_rgb(tmp_path / "p.png"), as_float(np.asarray(palette.convert("RGB"))))
    assert torch.equal(read_rgb(tmp_path / "a.png"), as_float(rgb))                     # alpha dropped, colours kept
    assert torch.equal(read_rgb(tmp_path / "l.png"), as_float(np.repeat(rgb[:, :, :1], 3, axis=2)))


def test_float_images_are_refused_in_one_line(tmp_path):
    Image.fromarray(np.full((16, 16), 0.5, dtype=np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(DataError, match=r"^corrupt image: .*f\.tif \(floating-point pixels") as exc:
        verify_dataset(tmp_path)
    assert "\n" not in str(exc.value)


def test_a_training_set_needs_two_images_whose_crops_are_mostly_image(tmp_path):
    from trainable.data import check_training_set

    one = tmp_path / "one"
    one.mkdir()
    Image.new("RGB", (200, 200)).save(one / "a.png")
    with pytest.raises(DataError, match="has 1 image\\(s\\); training needs at least 2"):
        ImageFolder(one, patch_size=128).verify()
    Image.new("RGB", (120, 128)).save(one / "b.png")         # 1 - 120/128 = 6 % padding: trains
    assert len(check_training_set(one, 128).files) == 2
    Image.new("RGB", (8, 8)).save(one / "c.png")             # 99.6 % padding: refused, named
    with pytest.raises(DataError, match=r"c\.png is 8x8: its 128x128 crops would be 100% padding \(at most 25%\)"):
        ImageFolder(one, patch_size=128).verify()
    ImageFolder(one, train=False).verify()                   # any size validates (whole images)
    assert len(check_training_set(one, 8).files) == 3
