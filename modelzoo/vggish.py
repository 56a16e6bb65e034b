"""VGGish (Hershey et al., 2017) in PyTorch: log-mel examples ``(N, 1, 96, 64)`` -> ``(N, D)``.

Layer names follow torchvggish, so its converted checkpoint (``vggish-10086976.pth``, a local
file) loads with ``load_state_dict``. The log-mel frontend lives in
:mod:`handlers.vggish_frontend`, where the handler runs it. ``tiny`` narrows every layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from handlers.vggish_frontend import BANDS, EXAMPLE_FRAMES


@dataclass(frozen=True)
class VggishSize:
    channels: tuple[int, int, int, int]
    hidden: int
    embedding_dim: int


SIZES = {"tiny": VggishSize((8, 16, 32, 32), 64, 32),
         "base": VggishSize((64, 128, 256, 512), 4096, 128)}


class Vggish(nn.Module):
    def __init__(self, size: VggishSize) -> None:
        super().__init__()
        c1, c2, c3, c4 = size.channels
        layers: list[nn.Module] = []
        for block in ([(1, c1)], [(c1, c2)], [(c2, c3), (c3, c3)], [(c3, c4), (c4, c4)]):
            for cin, cout in block:
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        flat = c4 * (EXAMPLE_FRAMES // 16) * (BANDS // 16)
        self.embeddings = nn.Sequential(
            nn.Linear(flat, size.hidden), nn.ReLU(inplace=True),
            nn.Linear(size.hidden, size.hidden), nn.ReLU(inplace=True),
            nn.Linear(size.hidden, size.embedding_dim), nn.ReLU(inplace=True))
        self.embedding_dim = size.embedding_dim

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        x = self.features(examples)
        # TF's NHWC flattening order, as the original weights expect.
        x = x.permute(0, 2, 3, 1).contiguous().view(x.size(0), -1)
        return self.embeddings(x)

    def handler_settings(self) -> dict:
        return {"embedding_dim": self.embedding_dim}

    def example(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(batch, 1, EXAMPLE_FRAMES, BANDS, generator=generator)


def from_checkpoint(path: str) -> Vggish:
    """The full-size network with weights from a local torchvggish state dict."""
    model = Vggish(SIZES["base"])
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=False)
    return model.eval()


def from_size(size: str, seed: int = 0) -> Vggish:
    torch.manual_seed(seed)
    return Vggish(SIZES[size]).eval()
