"""VITON-HD and DressCode readers on tiny fixture folders built here."""

import pytest
import torch
from PIL import Image, ImageDraw

from igr.data import CATEGORIES, DataFolderError, DressCode, VitonHD

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
    """ROOT/test/{image,cloth,cloth-mask} with two people; the pair list pairs them crosswise."""
    root = tmp_path / "viton"
    for sub in ("image", "cloth", "cloth-mask"):
        (root / "test" / sub).mkdir(parents=True)
    for name, colour in (("000001_00.jpg", RED), ("000002_00.jpg", BLUE)):
        Image.new("RGB", (72, 96), GREY).save(root / "test" / "image" / name)
        garment_image(colour).save(root / "test" / "cloth" / name)
        block_mask().save(root / "test" / "cloth-mask" / name)
    (root / "test_pairs.txt").write_text("000001_00.jpg 000002_00.jpg\n000002_00.jpg 000001_00.jpg\n")
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
