import pytest
import torch

from igr.config import IGRConfig
from igr.model import IGRModel


@pytest.fixture(scope="module")
def tiny_model() -> IGRModel:
    torch.manual_seed(0)
    return IGRModel(IGRConfig.tiny()).eval()


def _person(seed: int, config: IGRConfig = IGRConfig.tiny()) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((1, 3, config.height, config.width), generator=g) * 2 - 1)


@pytest.fixture
def person() -> torch.Tensor:
    return _person(1)


@pytest.fixture
def other_person() -> torch.Tensor:
    return _person(2)
