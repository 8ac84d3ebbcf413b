"""The EfficientNet-Lite0 distance stands on real ImageNet weights and orders the obvious cases."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from igr.perceptual import EffNetDistance, EfficientNetLite0, pretrained, weights_path


@pytest.fixture(scope="module")
def distance() -> EffNetDistance:
    return EffNetDistance()


@pytest.fixture(scope="module")
def garments() -> torch.Tensor:
    from igr.eval import split_batches

    _, garment, _ = next(split_batches("test", 6, (64, 48), 6))
    return garment


def _blur(x: torch.Tensor, times: int = 1) -> torch.Tensor:
    k = torch.tensor([1.0, 4, 6, 4, 1])
    k = (k[:, None] * k[None]) / 256                                   # 5×5 binomial
    for _ in range(times):
        x = F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), k.expand(3, 1, 5, 5), groups=3)
    return x


def test_the_wheel_weights_fill_every_parameter_of_the_network_strictly():
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    net = EfficientNetLite0()
    assert set(state) == set(net.state_dict())                         # nothing missing, nothing left over
    assert all(state[k].shape == v.shape for k, v in net.state_dict().items())
    assert 4.6e6 < sum(p.numel() for p in pretrained().parameters()) < 4.7e6


@pytest.mark.parametrize("image, classes", [("chelsea", {281, 282, 283, 284, 285}),   # cats
                                            ("coffee", {967, 968})])                    # espresso, cup
def test_the_pretrained_network_recognises_photographs(image, classes):
    from skimage import data

    x = torch.tensor(getattr(data, image)()).permute(2, 0, 1)[None].float() / 127.5 - 1
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    net = pretrained()
    with torch.no_grad():
        probs = net(net.preprocess(x)).softmax(-1)[0]
    assert int(probs.argmax()) in classes and float(probs.max()) > 0.5


def test_distance_is_zero_for_identical_images_and_symmetric(distance, garments):
    assert torch.equal(distance(garments, garments), torch.zeros(len(garments)))
    blurred = _blur(garments)
    assert torch.allclose(distance(garments, blurred), distance(blurred, garments), atol=1e-6)


def test_distance_orders_identical_blurred_and_blank(distance, garments):
    same = distance(garments, garments)
    slight, heavy = distance(_blur(garments), garments), distance(_blur(garments, 4), garments)
    blank = distance(torch.ones_like(garments), garments)
    assert (same < slight).all() and (slight < heavy).all() and (heavy < blank).all()
    assert np.all(blank.numpy() <= 4.0)                                # unit vectors: at most 2² per stage
