"""VITON-HD and DressCode readers, and `igr.eval --data` on their test pairs, on tiny fixture folders built here."""
import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from igr.data import CATEGORIES, DataFolderError, DressCode, VitonHD
from igr.eval import main as eval_main
from igr.metrics import PER_SAMPLE, image_metrics

SIZE = (64, 48)
RED, BLUE, GREEN, GREY = (200, 30, 30), (30, 40, 190), (40, 160, 60), (120, 120, 120)


def garment_image(colour, size=(72, 96)) -> Image.Image:
    """A coloured block on white, like an in-shop photo (W, H = size)."""
    img = Image.new("RGB", size, "white")
    ImageDraw.Draw(img).rectangle((12, 16, size[0] - 12, size[1] - 16), fill=colour)
    return img


def block_mask(size=(72, 96)) -> Image.Image:
    m = Image.new("L", size, 0)
    ImageDraw.Draw(m).rectangle((12, 16, size[0] - 12, size[1] - 16), fill=255)
    return m


def colour_of(t: torch.Tensor) -> torch.Tensor:
    """Centre pixel of a (3, H, W) tensor in [-1, 1], as 0..255."""
    return (t[:, t.shape[1] // 2, t.shape[2] // 2] + 1) * 127.5


@pytest.fixture
def viton(tmp_path):
    """ROOT/test/{image,cloth,cloth-mask} with two people; the pair list pairs them crosswise. ROOT/train holds
    three others, in green."""
    root = tmp_path / "viton"
    for split, people in (("test", (("000001_00.jpg", RED), ("000002_00.jpg", BLUE))),
                          ("train", tuple((f"00001{i}_00.jpg", GREEN) for i in range(3)))):
        for sub in ("image", "cloth", "cloth-mask"):
            (root / split / sub).mkdir(parents=True)
        for name, colour in people:
            Image.new("RGB", (72, 96), GREY).save(root / split / "image" / name)
            garment_image(colour).save(root / split / "cloth" / name)
            block_mask().save(root / split / "cloth-mask" / name)
    (root / "test_pairs.txt").write_text("000001_00.jpg 000002_00.jpg\n000002_00.jpg 000001_00.jpg\n")
    (root / "train_pairs.txt").write_text("".join(f"00001{i}_00.jpg 00001{i}_00.jpg\n" for i in range(3)))
    return root


def test_viton_hd_pairs_each_person_with_the_garment_they_wear(viton):
    ds = VitonHD(viton, "test", size=SIZE)
    assert len(ds) == 2 and ds.names == ["000001_00.jpg", "000002_00.jpg"]
    first, second = ds[0], ds[1]
    assert torch.allclose(colour_of(first["garment"]), torch.tensor(RED, dtype=torch.float32), atol=12)
    assert torch.allclose(colour_of(second["garment"]), torch.tensor(BLUE, dtype=torch.float32), atol=12)
    assert first["person"].shape == first["garment"].shape == (3, *SIZE)
    assert first["mask"].shape == (1, *SIZE)
    assert set(first["mask"].unique().tolist()) == {0.0, 1.0}
    assert first["category"] == -1 and first["seed"] == -1 and first["quality"] == 1.0


def test_viton_hd_mask_covers_the_garment_block(viton):
    item = VitonHD(viton, "test", size=SIZE)[0]
    non_white = (item["garment"] < 0.85).any(0)
    mask = item["mask"][0] > 0
    iou = (non_white & mask).sum() / (non_white | mask).sum()
    assert iou > 0.85


def test_images_of_another_aspect_are_letterboxed_on_white(viton):
    Image.new("RGB", (96, 96), GREY).save(viton / "test" / "image" / "000001_00.jpg")   # square
    person = VitonHD(viton, "test", size=SIZE)[0]["person"]
    assert person.shape == (3, *SIZE)
    assert (person[:, :4] > 0.95).all() and (person[:, -4:] > 0.95).all()     # white bars top, bottom
    assert (person[:, SIZE[0] // 2].abs() < 0.2).all()                            # grey picture between


def test_viton_hd_without_cloth_mask_folder_names_it(viton):
    (viton / "test" / "cloth-mask").rename(viton / "test" / "masks")
    with pytest.raises(DataFolderError, match=r"has no cloth-mask/ \(expected beside image/ and cloth/\)"):
        VitonHD(viton, "test")


def test_viton_hd_missing_image_named_in_pair_list_is_reported(viton):
    (viton / "test" / "image" / "000002_00.jpg").unlink()
    with pytest.raises(DataFolderError, match=r"line 2 names 000002_00.jpg but .*image/000002_00.jpg is missing"):
        VitonHD(viton, "test")


@pytest.mark.parametrize("damage, says", [
    (lambda root: (root / "test_pairs.txt").unlink(), "test_pairs.txt is missing"),
    (lambda root: (root / "test_pairs.txt").write_text("000001_00.jpg\n"), "line 1"),
    (lambda root: (root / "test_pairs.txt").write_text("\n"), "names no pairs"),
    (lambda root: (root / "test").rename(root / "tst"), "has no test/"),
])
def test_viton_hd_malformed_folders_raise_data_folder_error(viton, damage, says):
    damage(viton)
    with pytest.raises(DataFolderError, match=says):
        VitonHD(viton, "test")


def test_data_folder_error_is_a_value_error():
    assert issubclass(DataFolderError, ValueError)


@pytest.fixture
def dresscode(tmp_path):
    """ROOT/{dresses,upper_body}/images/ID_{0,1}.jpg with paired test lists; masks only for dresses."""
    root = tmp_path / "dresscode"
    for cat, colour in (("dresses", GREEN), ("upper_body", RED)):
        images = root / cat / "images"
        images.mkdir(parents=True)
        for ident in ("020714", "020715"):
            Image.new("RGB", (72, 96), GREY).save(images / f"{ident}_0.jpg")
            garment_image(colour).save(images / f"{ident}_1.jpg")
        (root / cat / "test_pairs_paired.txt").write_text("020714_0.jpg 020714_1.jpg\n020715_0.jpg 020715_1.jpg\n")
        (root / cat / "train_pairs.txt").write_text("020714_0.jpg 020714_1.jpg\n")
    (root / "dresses" / "masks").mkdir()
    for ident in ("020714", "020715"):
        block_mask().save(root / "dresses" / "masks" / f"{ident}_1.png")
    return root


def test_dresscode_reads_the_categories_asked_for(dresscode):
    ds = DressCode(dresscode, "test", size=SIZE, categories=("dresses", "upper_body"))
    assert ds.names == ["dresses/020714_0.jpg", "dresses/020715_0.jpg",
                        "upper_body/020714_0.jpg", "upper_body/020715_0.jpg"]
    dress, top = ds[0], ds[2]
    assert dress["category"] == CATEGORIES.index("dress") and top["category"] == -1
    assert torch.allclose(colour_of(dress["garment"]), torch.tensor(GREEN, dtype=torch.float32), atol=12)
    assert torch.allclose(colour_of(top["garment"]), torch.tensor(RED, dtype=torch.float32), atol=12)
    assert len(DressCode(dresscode, "train", size=SIZE, categories=("dresses",))) == 1


def test_dresscode_without_masks_uses_the_non_white_garment_pixels(dresscode):
    with_file = DressCode(dresscode, "test", size=SIZE, categories=("dresses",))[0]["mask"]
    derived = DressCode(dresscode, "test", size=SIZE, categories=("upper_body",))[0]["mask"]
    iou = ((with_file > 0) & (derived > 0)).sum() / ((with_file > 0) | (derived > 0)).sum()
    assert derived.sum() > 0 and iou > 0.85


def test_dresscode_missing_category_folder_is_named(dresscode):
    with pytest.raises(DataFolderError, match="has no lower_body/"):
        DressCode(dresscode, "test")


def test_dresscode_missing_garment_image_is_named(dresscode):
    (dresscode / "upper_body" / "images" / "020715_1.jpg").unlink()
    with pytest.raises(DataFolderError, match=r"line 2 names 020715_0.jpg but .*020715_1.jpg is missing"):
        DressCode(dresscode, "test", categories=("upper_body",))


def test_dresscode_mask_folder_missing_a_mask_is_named(dresscode):
    (dresscode / "dresses" / "masks" / "020715_1.png").unlink()
    with pytest.raises(DataFolderError, match="no mask for 020715_1.jpg"):
        DressCode(dresscode, "test", categories=("dresses",))


def test_dresscode_missing_pair_list_is_named(dresscode):
    (dresscode / "dresses" / "test_pairs_paired.txt").unlink()
    with pytest.raises(DataFolderError, match="test_pairs_paired.txt is missing"):
        DressCode(dresscode, "test", categories=("dresses",))


def test_dresscode_says_where_its_masks_come_from(dresscode):
    assert DressCode(dresscode, "test", categories=("dresses",)).mask_source()[0] == "dataset"
    kind, words = DressCode(dresscode, "test", categories=("upper_body",)).mask_source()
    assert kind == "white_threshold" and "below 240 of 255" in words
    kind, words = DressCode(dresscode, "test", categories=("dresses", "upper_body")).mask_source()
    assert kind == "mixed" and "for 2 pairs;" in words and "the other 2 pairs" in words


# -- igr.eval --data: the same report on a data set's test pairs ---------------------------------------------------

EVAL = ["--steps", "1", "--batch", "2", "--boot", "10"]


def _eval(model, data: str, out, *extra: str) -> dict:
    assert eval_main(["--model", str(model), "--data", data, *EVAL, "--out", str(out), *extra]) == 0
    return json.loads(out.with_suffix(".json").read_text())


def test_eval_on_viton_hd_reports_its_test_pairs(viton, tiny_model, tmp_path):
    model = tiny_model.save_pretrained(tmp_path / "model")
    out = tmp_path / "report" / "viton"
    report = _eval(model, f"vitonhd:{viton}", out, "--references")
    assert report["split"] == "test" and report["n"] == 2
    data = report["data"]
    assert data["spec"] == f"vitonhd:{viton}" and data["pairs"] == 2
    assert data["pair_lists"] == [str(viton / "test_pairs.txt")]
    assert data["mask"] == "dataset" and str(viton / "test" / "cloth-mask") in data["mask_source"]
    m = report["metrics"]
    for k in (*PER_SAMPLE, "fd", "kid"):
        assert np.isfinite(m[k]["mean"]), k
    per = m["per_sample"]
    assert per["pair"] == ["000001_00.jpg", "000002_00.jpg"]          # the test list's, not the train list's
    assert len(per["ssim_mask"]) == 2 and m["by_category"] == {} and "category" not in per   # VITON-HD names none
    # the figures are taken against the test garments and cloth masks, letterboxed to the model's size
    truth = VitonHD(viton, "test", size=(tiny_model.config.height, tiny_model.config.width))
    garment = torch.stack([truth[i]["garment"] for i in range(2)])
    mask = torch.stack([truth[i]["mask"] for i in range(2)])
    blank = image_metrics(torch.ones_like(garment), garment, mask)
    assert report["references"]["blank"]["delta_e"] == pytest.approx(float(blank["delta_e"].mean()), rel=1e-5)
    assert report["references"]["ground_truth"]["mask_iou"] > 0.85
    md = out.with_suffix(".md").read_text()
    assert f"Data `vitonhd:{viton}`, split `test`: n = 2 of its 2 pairs" in md
    assert "cloth-mask" in md and "| garment category |" not in md


def test_eval_on_dresscode_spreads_n_over_its_categories(dresscode, tiny_model, tmp_path):
    model = tiny_model.save_pretrained(tmp_path / "model")
    out = tmp_path / "report" / "dresscode"
    report = _eval(model, f"dresscode:{dresscode}", out, "--n", "2")
    assert report["n"] == 2 and report["data"]["pairs"] == 4 and report["data"]["mask"] == "mixed"
    assert report["data"]["pair_lists"] == [str(dresscode / c / "test_pairs_paired.txt")
                                            for c in ("upper_body", "dresses")]
    per = report["metrics"]["per_sample"]
    # DressCode's lists run category by category: the middle pair of each half, one per category
    assert per["pair"] == ["upper_body/020715_0.jpg", "dresses/020715_0.jpg"]
    assert per["category"] == ["upper_body", "dresses"]
    by = report["metrics"]["by_category"]
    assert set(by) == {"upper_body", "dresses"} and all(v["n"] == 1 for v in by.values())
    assert by["dresses"]["delta_e"] == pytest.approx(per["delta_e"][1], abs=1e-5)
    md = out.with_suffix(".md").read_text()
    assert "| dresses | 1 |" in md and "white-background threshold" in md


def _drop_cloth(root):
    (root / "test" / "cloth" / "000002_00.jpg").unlink()


def _garble_image(root):
    (root / "test" / "image" / "000001_00.jpg").write_bytes(b"not a jpeg")


@pytest.mark.parametrize("spec, damage, args, says", [
    ("vitonhd:{root}-moved", None, (), "viton-moved/test is not a folder"),
    ("viton:{root}", None, (), "expected vitonhd:ROOT or dresscode:ROOT"),
    ("vitonhd:{root}", lambda root: (root / "test_pairs.txt").unlink(), (), "test_pairs.txt is missing"),
    ("vitonhd:{root}", _drop_cloth, (), "test/cloth/000002_00.jpg is missing"),
    ("vitonhd:{root}", _garble_image, (), "test/image/000001_00.jpg cannot be read as an image"),
    ("vitonhd:{root}", None, ("--n", "3"), "--n 3, but vitonhd:"),
])
def test_eval_on_a_bad_data_folder_says_which_file_in_one_line(viton, tiny_model, tmp_path, capsys, spec, damage,
                                                                 args, says):
    model = tiny_model.save_pretrained(tmp_path / "model")
    if damage is not None:
        damage(viton)
    out = tmp_path / "report" / "bad"
    capsys.readouterr()
    assert eval_main(["--model", str(model), "--data", spec.format(root=viton), *EVAL, *args,
                      "--out", str(out)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("python -m igr.eval")]
    assert len(lines) == 1 and lines[0].startswith("python -m igr.eval: error: --data: ") and says in lines[0]
    assert not out.with_suffix(".json").exists()


def test_eval_on_a_data_set_refuses_a_val_split(viton, tiny_model, tmp_path, capsys):
    model = tiny_model.save_pretrained(tmp_path / "model")
    with pytest.raises(SystemExit) as e:
        eval_main(["--model", str(model), "--data", f"vitonhd:{viton}", "--split", "val", "--out", str(tmp_path / "r")])
    assert e.value.code == 2 and "no val (--split test)" in capsys.readouterr().err
