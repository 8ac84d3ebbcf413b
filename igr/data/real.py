"""Readers for the real try-off data sets a user may have on disk: VITON-HD and DressCode.

Both return the SynthGarment training dict (see dataset.to_item), letterboxed to `size` on white.
Real photos carry `seed` -1 and `quality` 1.0; `category` is an index into CATEGORIES where the
data set says it (DressCode dresses -> "dress"), else -1 (unknown).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from .dataset import to_item
from .errors import DataFolderError
from .synth import CATEGORIES, parse_size


def letterbox(img: Image.Image, size: tuple[int, int], *, fill, resample=Image.BICUBIC) -> np.ndarray:
    """Resize keeping the aspect ratio, centred on a `fill` canvas of (H, W)."""
    H, W = size
    k = min(W / img.width, H / img.height)
    w, h = max(1, round(img.width * k)), max(1, round(img.height * k))
    canvas = Image.new(img.mode, (W, H), fill)
    canvas.paste(img.resize((w, h), resample), ((W - w) // 2, (H - h) // 2))
    return np.asarray(canvas)


WHITE_MASK_THRESHOLD = 240     # of 255: an in-shop pixel with any channel below it is garment (`white_mask`)


def white_mask(garment: np.ndarray, threshold: int = WHITE_MASK_THRESHOLD) -> np.ndarray:
    """(H, W) uint8 {0, 255}: pixels of an in-shop image that are not near-white."""
    return np.where((garment < threshold).any(-1), np.uint8(255), np.uint8(0))


def _dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataFolderError(f"{what}: {path} is not a folder")
    return path


def _open(path: Path, mode: str) -> Image.Image:
    try:
        return Image.open(path).convert(mode)
    except OSError as e:                        # unreadable or truncated (UnidentifiedImageError is one)
        raise DataFolderError(f"{path} cannot be read as an image ({e})") from e


def _read_pairs(path: Path, hint: str) -> list[tuple[int, str, str]]:
    """(line number, first name, second name) of a pair list; a malformed line raises."""
    if not path.is_file():
        raise DataFolderError(f"pair list {path} is missing ({hint})")
    pairs = []
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 2:
            raise DataFolderError(f"pair list {path} line {no} is {line!r}; expected 'person.jpg cloth.jpg'")
        pairs.append((no, parts[0], parts[1]))
    if not pairs:
        raise DataFolderError(f"pair list {path} names no pairs")
    return pairs


class _PairFolder(Dataset):
    """Common reading: records of (person, garment, mask or None, category, name)."""

    records: list[tuple[Path, Path, Path | None, int, str]]
    size: tuple[int, int]
    pair_lists: list[Path]            # the pair-list files the records come from

    def __len__(self) -> int:
        return len(self.records)

    @property
    def names(self) -> list[str]:
        return [r[4] for r in self.records]

    @property
    def pair_categories(self) -> list[str | None]:
        """The data set's own category of each pair (DressCode: its folder); None where it names none."""
        return [None] * len(self.records)

    def mask_source(self) -> tuple[str, str]:
        """Where these pairs' garment masks come from: ("dataset", ...) when every pair has a cloth-mask file,
        ("white_threshold", ...) when none has (`white_mask`), ("mixed", ...) otherwise; the second element says
        it in words, with the folders."""
        folders = sorted({str(r[2].parent) for r in self.records if r[2] is not None})
        missing = sum(r[2] is None for r in self.records)
        threshold = ("the white-background threshold (garment-image pixels with any channel below "
                     f"{WHITE_MASK_THRESHOLD} of 255)")
        if not missing:
            return "dataset", f"the data set's cloth masks ({', '.join(folders)})"
        if not folders:
            return "white_threshold", f"{threshold}: the data set has no cloth masks"
        pairs = lambda k: f"{k} pair{'s' if k != 1 else ''}"
        return "mixed", (f"the data set's cloth masks ({', '.join(folders)}) for {pairs(len(self.records) - missing)}; "
                         f"{threshold} for the other {pairs(missing)}, which have none")

    def __getitem__(self, index: int) -> dict:
        person_path, garment_path, mask_path, category, _ = self.records[index]
        person = letterbox(_open(person_path, "RGB"), self.size, fill=(255, 255, 255))
        garment = letterbox(_open(garment_path, "RGB"), self.size, fill=(255, 255, 255))
        if mask_path is None:
            mask = white_mask(garment)
        else:
            mask = letterbox(_open(mask_path, "L"), self.size, fill=0, resample=Image.NEAREST)
            mask = np.where(mask > 127, np.uint8(255), np.uint8(0))   # VITON-HD masks are JPEGs
        return to_item(person, garment, mask, category=category, quality=1.0, seed=-1)


class VitonHD(_PairFolder):
    """VITON-HD: ROOT/{train,test}/{image,cloth,cloth-mask}/NAME.jpg and ROOT/{split}_pairs.txt.

    Each line of the pair list is "person.jpg cloth.jpg". For try-off the target is the garment
    the person wears, which VITON-HD stores under the person's own file name in cloth/ and
    cloth-mask/ (the second column, an unpaired garment in test_pairs.txt, is ignored).
    A cloth mask may be NAME.jpg (as shipped) or NAME.png.
    """

    def __init__(self, root, split: str = "test", *, size=(256, 192)):
        if split not in ("train", "test"):
            raise ValueError(f"VITON-HD split must be 'train' or 'test', got {split!r}")
        self.root, self.size = Path(root), parse_size(size)
        base = _dir(self.root / split, f"VITON-HD folder {self.root} has no {split}/ (expected {split}/image, "
                                       f"{split}/cloth, {split}/cloth-mask)")
        folders = {}
        for sub in ("image", "cloth", "cloth-mask"):
            others = " and ".join(f"{o}/" for o in ("image", "cloth", "cloth-mask") if o != sub)
            folders[sub] = _dir(base / sub, f"VITON-HD folder {base} has no {sub}/ (expected beside {others})")
        listing = {sub: {p.name for p in path.iterdir()} for sub, path in folders.items()}
        self.records = []
        pair_list = self.root / f"{split}_pairs.txt"
        self.pair_lists = [pair_list]
        for no, person, _cloth in _read_pairs(pair_list, "one 'person.jpg cloth.jpg' per line"):
            mask = person if person in listing["cloth-mask"] else Path(person).with_suffix(".png").name
            for sub, name in (("image", person), ("cloth", person), ("cloth-mask", mask)):
                if name not in listing[sub]:
                    raise DataFolderError(f"pair list {pair_list} line {no} names {person} but "
                                          f"{folders[sub] / name} is missing")
            self.records.append((folders["image"] / person, folders["cloth"] / person,
                                 folders["cloth-mask"] / mask, -1, person))


class DressCode(_PairFolder):
    """DressCode: ROOT/{upper_body,lower_body,dresses}/images/ID_0.jpg (person), ID_1.jpg (garment).

    Pair lists per category: train_pairs.txt, test_pairs_paired.txt ("ID_0.jpg ID_1.jpg").
    The official release ships no in-shop garment masks: if ROOT/<category>/cloth_mask/ or
    ROOT/<category>/masks/ holds ID_1.png (or .jpg) it is used, else the mask is the garment
    image's non-white pixels (white_mask). Other official folders (label_maps, keypoints,
    skeletons, dense) are not needed and not checked.
    """

    CATEGORIES = ("upper_body", "lower_body", "dresses")

    def __init__(self, root, split: str = "test", *, size=(256, 192), categories=CATEGORIES):
        if split not in ("train", "test"):
            raise ValueError(f"DressCode split must be 'train' or 'test', got {split!r}")
        unknown = set(categories) - set(self.CATEGORIES)
        if unknown or not categories:
            raise ValueError(f"DressCode categories must be among {self.CATEGORIES}, got {tuple(categories)}")
        self.root, self.size = Path(root), parse_size(size)
        _dir(self.root, "DressCode root")
        self.records, self.pair_lists = [], []
        for cat in categories:
            base = _dir(self.root / cat, f"DressCode folder {self.root} has no {cat}/ (pass categories=... "
                                         f"to read only the ones you have)")
            images = _dir(base / "images", f"DressCode folder {base} has no images/ "
                                           "(expected ID_0.jpg and ID_1.jpg)")
            names = {p.name for p in images.iterdir()}
            mask_dir = next((base / m for m in ("cloth_mask", "masks") if (base / m).is_dir()), None)
            masks = {p.name for p in mask_dir.iterdir()} if mask_dir else set()
            pair_list = base / ("train_pairs.txt" if split == "train" else "test_pairs_paired.txt")
            self.pair_lists.append(pair_list)
            index = CATEGORIES.index("dress") if cat == "dresses" else -1
            for no, person, _cloth in _read_pairs(pair_list, "one 'ID_0.jpg ID_1.jpg' per line"):
                if not person.endswith("_0.jpg"):
                    raise DataFolderError(f"pair list {pair_list} line {no} names {person}; "
                                          "DressCode person images end in _0.jpg")
                garment = person[: -len("_0.jpg")] + "_1.jpg"   # the worn garment, whatever the list pairs
                for name in (person, garment):
                    if name not in names:
                        raise DataFolderError(f"pair list {pair_list} line {no} names {person} but "
                                              f"{images / name} is missing")
                mask = None
                if mask_dir is not None:
                    stem = Path(garment).stem
                    found = next((m for m in (stem + ".png", stem + ".jpg") if m in masks), None)
                    if found is None:
                        raise DataFolderError(f"{mask_dir} has no mask for {garment} (expected {stem}.png)")
                    mask = mask_dir / found
                self.records.append((images / person, images / garment, mask, index, f"{cat}/{person}"))

    @property
    def pair_categories(self) -> list[str]:
        return [name.partition("/")[0] for name in self.names]


def open_data(spec: str, split: str, size=(256, 192)) -> VitonHD | DressCode:
    """A real data set from "vitonhd:ROOT" or "dresscode:ROOT" (what `--data` takes)."""
    kind, sep, root = spec.partition(":")
    readers = {"vitonhd": VitonHD, "dresscode": DressCode}
    if not sep or kind not in readers or not root:
        raise DataFolderError(f"--data {spec!r}: expected vitonhd:ROOT or dresscode:ROOT")
    if kind == "dresscode":                         # the categories the folder has (a user may have one)
        present = tuple(c for c in DressCode.CATEGORIES if (Path(root) / c).is_dir())
        return DressCode(root, split, size=size, categories=present or DressCode.CATEGORIES)
    return readers[kind](root, split, size=size)


def read_subset(path) -> list[str]:
    """Pair names of a subset file: one a line (as `names` spells them), '#' starts a comment."""
    path = Path(path)
    if not path.is_file():
        raise DataFolderError(f"subset file {path} is missing (make one with python -m igr.data subset)")
    names = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return [n for n in names if n]


def training_pairs(spec: str, size, *, subset=None, min_quality: float | None = None) -> _PairFolder:
    """The train pairs of `spec` (see `open_data`), restricted to the names in the `subset` file when given.

    A real photo has no quality score (SynthGarment's drives its hqft subset), so a stage that asks for the
    high-quality subset (`min_quality`) on a real data set must name it: a subset file from `python -m igr.data
    subset` (texture score) or from any other filtering (e.g. the paper's), one pair name a line."""
    data = open_data(spec, "train", size)
    if subset is None:
        if min_quality is not None:
            raise DataFolderError(f"the high-quality subset (min_quality {min_quality}) of {spec} needs a subset file: "
                                  "python -m igr.data subset --data ... --out hq.txt, then --subset hq.txt")
        return data
    wanted = read_subset(subset)
    known = set(data.names)
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise DataFolderError(f"subset file {subset} names {unknown[0]}, which is not a train pair of {spec}"
                              f"{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}")
    if not wanted:
        raise DataFolderError(f"subset file {subset} names no pairs")
    keep = set(wanted)
    data.records = [r for r in data.records if r[4] in keep]
    return data


def texture_score(garment: np.ndarray, mask: np.ndarray, *, edge: float = 0.1) -> float:
    """Share of the in-shop garment's pixels (inside its mask) on an edge: Sobel gradient magnitude of the grey
    image in [0, 1] above `edge`. Plain garments score near 0, prints, logos and stripes higher."""
    grey = garment.astype(np.float32).mean(-1) / 255.0
    p = np.pad(grey, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    inside = mask > 127
    # erode the mask by one pixel (the garment's outline is an edge of every garment, not texture)
    inner = inside & np.roll(inside, 1, 0) & np.roll(inside, -1, 0) & np.roll(inside, 1, 1) & np.roll(inside, -1, 1)
    if inner.sum() == 0:
        return 0.0
    return float((np.hypot(gx, gy)[inner] / 4 > edge).mean())
