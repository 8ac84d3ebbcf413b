"""SynthGarment generator and its torch Dataset."""

import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from igr.data import CATEGORIES, PRINTS, SPLITS, SceneConfig, SynthGarmentDataset, generate, seed_for
from igr.data.prints import texture
from igr.data.synth import quality_score

SMALL = (64, 48)


def unit_mean_colour(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean RGB inside mask, as a unit vector (hue and saturation, not brightness)."""
    m = img[mask > 0].astype(np.float64).mean(0)
    return m / np.linalg.norm(m)


def test_same_seed_gives_byte_identical_sample():
    a, b = generate(123, size=SMALL), generate(123, size=SMALL)
    for name in ("person", "garment", "mask", "worn"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.meta == b.meta


def test_generation_ignores_global_random_state_and_call_order():
    np.random.seed(0), random.seed(0), torch.manual_seed(0)
    first = generate(77, size=SMALL)
    np.random.seed(1), random.seed(1), torch.manual_seed(1)
    generate(78, size=SMALL)
    again = generate(77, size=SMALL)
    assert np.array_equal(first.person, again.person) and np.array_equal(first.garment, again.garment)


def test_different_seeds_give_different_samples():
    a, b = generate(5, size=SMALL), generate(6, size=SMALL)
    assert not np.array_equal(a.person, b.person)
    assert not np.array_equal(a.garment, b.garment)


def test_every_category_and_print_is_produced_across_seeds():
    metas = [generate(i, size=SMALL).meta for i in range(120)]
    assert {m["category"] for m in metas} == set(CATEGORIES)
    assert {m["print"] for m in metas} == set(PRINTS)
    assert len(CATEGORIES) >= 6


@pytest.mark.parametrize("size", [(64, 48), (128, 96), (256, 192)])
def test_sample_arrays_have_the_documented_shapes_and_dtypes(size):
    s = generate(11, size=size)
    H, W = size
    assert s.person.shape == s.garment.shape == (H, W, 3)
    assert s.mask.shape == s.worn.shape == (H, W)
    assert all(a.dtype == np.uint8 for a in (s.person, s.garment, s.mask, s.worn))
    assert set(np.unique(s.mask)) <= {0, 255} and set(np.unique(s.worn)) <= {0, 255}
    assert s.meta["category"] in CATEGORIES and s.meta["seed"] == 11 and s.meta["size"] == [H, W]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6, 7])
def test_mask_is_the_non_white_region_of_the_in_shop_image(seed):
    s = generate(seed, size=(128, 96))
    garment_px = (s.garment < 245).any(-1)
    mask = s.mask > 0
    iou = (garment_px & mask).sum() / (garment_px | mask).sum()
    assert iou > 0.99
    assert 0.1 < mask.mean() < 0.8   # centred, neither a speck nor the whole frame


def test_person_wears_the_in_shop_garments_colours():
    seeds = range(12)
    samples = [generate(i, size=(128, 96)) for i in seeds]
    for i, s in enumerate(samples):
        other = samples[(i + 1) % len(samples)]
        assert (s.worn > 0).mean() > 0.03, "the garment is barely visible on the person"
        worn = unit_mean_colour(s.person, s.worn)
        own, theirs = unit_mean_colour(s.garment, s.mask), unit_mean_colour(other.garment, other.mask)
        assert np.linalg.norm(worn - own) < np.linalg.norm(worn - theirs), f"seed {i}"


def test_forced_occluders_hide_more_of_the_garment_than_a_clean_scene():
    for seed in range(8):
        clean = generate(seed, size=SMALL, config=SceneConfig.clean()).meta["occlusion"]
        busy = generate(seed, size=SMALL, config=SceneConfig.occluded()).meta["occlusion"]
        assert 0.0 <= clean < busy <= 1.0, f"seed {seed}"


def test_quality_is_a_unit_score_that_falls_as_occlusion_rises():
    metas = [generate(i, size=SMALL).meta for i in range(60)]
    q = np.array([m["quality"] for m in metas])
    occ = np.array([m["occlusion"] for m in metas])
    assert ((0 <= q) & (q <= 1)).all() and ((0 <= occ) & (occ <= 1)).all()
    assert np.corrcoef(q, occ)[0, 1] < -0.2
    assert q.std() > 0.1   # the score separates samples, so a high-quality subset exists


def test_quality_score_is_one_when_clean_and_drops_with_each_defect():
    best = quality_score(0.0, 0.0, 0.0, 100, 1.0)
    assert best == 1.0
    # (occlusion, blur, noise, jpeg, richness), one defect each
    defects = [(0.3, 0, 0, 100, 1), (0, 1.0, 0, 100, 1), (0, 0, 8.0, 100, 1), (0, 0, 0, 40, 1), (0, 0, 0, 100, 0.2)]
    for args in defects:
        assert 0.0 <= quality_score(*args) < best, args


def test_split_seed_ranges_are_disjoint_and_indexed_from_their_start():
    ranges = list(SPLITS.values())
    for i, a in enumerate(ranges):
        for b in ranges[i + 1:]:
            assert a.stop <= b.start or b.stop <= a.start
    assert seed_for("val", 0) == SPLITS["val"].start
    assert seed_for("test", len(SPLITS["test"]) - 1) == SPLITS["test"].stop - 1


@pytest.mark.parametrize("split, index, error", [
    ("test", len(SPLITS["test"]), IndexError), ("train", -1, IndexError), ("val", 1.5, IndexError),
    ("dev", 0, ValueError)])
def test_seed_for_rejects_bad_split_or_index(split, index, error):
    with pytest.raises(error, match="split|range"):
        seed_for(split, index)


def test_generate_rejects_bad_seed_and_size():
    with pytest.raises(ValueError, match="seed"):
        generate(-1)
    with pytest.raises(ValueError, match="at least 32"):
        generate(0, size=(16, 12))


def test_textures_are_loaded_once_per_process():
    assert texture("brick") is texture("brick")


# Dataset ---------------------------------------------------------------------------------


def test_dataset_items_are_normalised_tensors_of_their_seed():
    ds = SynthGarmentDataset("val", 4, size=SMALL)
    item = ds[2]
    assert item["person"].shape == item["garment"].shape == (3, *SMALL)
    assert item["mask"].shape == (1, *SMALL)
    assert all(item[k].dtype == torch.float32 for k in ("person", "garment", "mask"))
    assert item["person"].min() >= -1 and item["person"].max() <= 1
    assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    assert item["seed"] == seed_for("val", 2)
    s = generate(seed_for("val", 2), size=SMALL)
    assert CATEGORIES[item["category"]] == s.meta["category"] and item["quality"] == s.meta["quality"]
    expected = torch.from_numpy(s.garment).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.equal(item["garment"], expected)


def test_dataset_batches_do_not_depend_on_worker_count():
    ds = SynthGarmentDataset("test", 8, size=SMALL)
    one = list(DataLoader(ds, batch_size=4, num_workers=0))
    two = list(DataLoader(ds, batch_size=4, num_workers=2))
    for a, b in zip(one, two, strict=True):
        for key in ("person", "garment", "mask", "seed", "category"):
            assert torch.equal(torch.as_tensor(a[key]), torch.as_tensor(b[key])), key


def test_high_quality_subset_is_deterministic_and_passes_the_threshold():
    ds = SynthGarmentDataset("val", 5, size=SMALL, min_quality=0.6)
    items = [ds[i] for i in range(5)]
    assert all(it["quality"] >= 0.6 for it in items)
    assert len({it["seed"] for it in items}) == 5
    assert [ds[i]["seed"] for i in range(5)] == [it["seed"] for it in items]
    plain = [SynthGarmentDataset("val", 40, size=SMALL)[i]["quality"] for i in range(40)]
    assert min(plain) < 0.6   # the threshold does select: not every sample passes


@pytest.mark.parametrize("kwargs, match", [
    ({"split": "dev"}, "split"), ({"n": 0}, "n must"), ({"n": len(SPLITS["val"]) + 1}, "n must"),
    ({"min_quality": 1.5}, "min_quality")])
def test_dataset_rejects_bad_arguments(kwargs, match):
    args = {"split": "val", **kwargs}
    with pytest.raises(ValueError, match=match):
        SynthGarmentDataset(**args)


def test_dataset_index_out_of_range_raises():
    with pytest.raises(IndexError):
        SynthGarmentDataset("val", 3, size=SMALL)[3]
