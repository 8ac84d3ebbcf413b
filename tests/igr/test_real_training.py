"""VITON-HD and DressCode end to end on fixture folders built here: the coarse stage on all train pairs, the
high-quality subset chosen by `python -m igr.data subset` (garment texture score), hqft on it."""
import pytest
import torch
from PIL import Image, ImageDraw

from igr.data.__main__ import main as data_main
from igr.data.real import read_subset, training_pairs
from igr.train.__main__ import main as train_main
from igr.train.config import StageConfig
from igr.train.trainer import StageData

STRIPED = {"vitonhd": ["000003_00.jpg", "000004_00.jpg"],              # each data set's pair names (`names`)
           "dresscode": ["dresses/020717_0.jpg", "upper_body/020716_0.jpg"]}


def garment(striped: bool, colour) -> Image.Image:
    img = Image.new("RGB", (72, 96), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle((12, 16, 60, 80), fill=colour)
    if striped:                                    # a print: edges inside the garment
        for y in range(20, 78, 6):
            draw.rectangle((14, y, 58, y + 2), fill=(250, 250, 250))
    return img


def person_image(i: int) -> Image.Image:
    return Image.new("RGB", (72, 96), (40 * i + 40,) * 3)


@pytest.fixture
def viton(tmp_path):
    """ROOT/train with 4 pairs (two plain garments, two striped), each person a grey of its own."""
    root = tmp_path / "viton"
    for sub in ("image", "cloth", "cloth-mask"):
        (root / "train" / sub).mkdir(parents=True)
    names = [f"00000{i}_00.jpg" for i in range(1, 5)]
    for i, name in enumerate(names):
        person_image(i).save(root / "train" / "image" / name)
        garment(name in STRIPED["vitonhd"], (200, 30 + 40 * i, 30)).save(root / "train" / "cloth" / name)
        mask = Image.new("L", (72, 96), 0)
        ImageDraw.Draw(mask).rectangle((12, 16, 60, 80), fill=255)
        mask.save(root / "train" / "cloth-mask" / name)
    (root / "train_pairs.txt").write_text("".join(f"{n} {n}\n" for n in names))
    return root


@pytest.fixture
def dresscode(tmp_path):
    """ROOT/{upper_body,dresses} (no lower_body/) with 2 train pairs each, one plain garment and one striped, each
    person a grey of its own. No masks/ folder, as in the official release: the masks are the garments' non-white
    pixels, so the near-white stripes are holes in them."""
    root = tmp_path / "dresscode"
    i = 0
    for cat, idents in (("upper_body", ("020714", "020716")), ("dresses", ("020715", "020717"))):
        images = root / cat / "images"
        images.mkdir(parents=True)
        for ident in idents:
            person_image(i).save(images / f"{ident}_0.jpg")
            striped = f"{cat}/{ident}_0.jpg" in STRIPED["dresscode"]
            garment(striped, (200, 30 + 40 * i, 30)).save(images / f"{ident}_1.jpg")
            i += 1
        (root / cat / "train_pairs.txt").write_text("".join(f"{d}_0.jpg {d}_1.jpg\n" for d in idents))
    return root


@pytest.fixture(params=[("vitonhd", "viton"), ("dresscode", "dresscode")], ids=["vitonhd", "dresscode"])
def real_data(request) -> tuple[str, list[str]]:
    """`--data` of a fixture folder with 4 train pairs, and the names of its two striped ones."""
    kind, folder = request.param
    return f"{kind}:{request.getfixturevalue(folder)}", STRIPED[kind]


def test_coarse_then_hqft_on_the_textured_subset(real_data, tmp_path, capsys):
    data, striped = real_data
    assert data_main(["subset", "--data", data, "--out", str(tmp_path / "hq.txt"), "--keep", "0.5",
                      "--size", "64x48"]) == 0
    assert sorted(read_subset(tmp_path / "hq.txt")) == striped, "the printed garments score highest"

    assert train_main(["--stage", "coarse", "--preset", "tiny", "--data", data, "--out", str(tmp_path / "coarse"),
                       "--steps", "2"]) == 0
    assert train_main(["--stage", "hqft", "--preset", "tiny", "--data", data, "--out", str(tmp_path / "no-subset"),
                       "--init", str(tmp_path / "coarse" / "final"), "--steps", "2"]) == 2
    assert "needs a subset file" in capsys.readouterr().err
    assert train_main(["--stage", "hqft", "--preset", "tiny", "--data", data, "--subset", str(tmp_path / "hq.txt"),
                       "--init", str(tmp_path / "coarse" / "final"), "--out", str(tmp_path / "hqft"),
                       "--steps", "2"]) == 0
    assert (tmp_path / "hqft" / "final" / "config.json").is_file()

    # the hqft rows are the subset's persons, and the coarse rows all four
    cfg = StageConfig.preset("hqft", "tiny", data=data, subset=str(tmp_path / "hq.txt"), batch=4)
    rows = StageData(cfg)
    greys = {round(float(rows[(0, r)]["person"][:, 30, 24].mean()), 2) for r in range(4)}
    subset = training_pairs(data, cfg.size, subset=tmp_path / "hq.txt")
    assert greys == {round(float(subset[i]["person"][:, 30, 24].mean()), 2) for i in range(2)}
    coarse = StageData(StageConfig.preset("coarse", "tiny", data=data, batch=4))
    assert len({round(float(coarse[(0, r)]["person"][:, 30, 24].mean()), 2) for r in range(4)}) == 4


def test_a_subset_naming_an_unknown_pair_is_refused(viton, tmp_path):
    (tmp_path / "hq.txt").write_text("000009_00.jpg\n")
    with pytest.raises(Exception, match="names 000009_00.jpg, which is not a train pair"):
        training_pairs(f"vitonhd:{viton}", (64, 48), subset=tmp_path / "hq.txt")
