"""The fusion head's input row: each modality's embedding, or zeros, then presence flags."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

MODALITIES = ("visual", "text", "audio")


class EmbeddingSizeMismatch(ValueError):
    """An embedding has the wrong size for its modality."""


def fusion_row(embeddings: Mapping[str, Sequence[float] | None],
               dims: Mapping[str, int]) -> torch.Tensor:
    """``[visual | text | audio | present flags]``: an absent modality is zeros, flag 0."""
    parts, flags = [], []
    for modality in MODALITIES:
        vector = embeddings.get(modality)
        if vector is None:
            parts.append(torch.zeros(dims[modality]))
            flags.append(0.0)
            continue
        tensor = torch.as_tensor(vector, dtype=torch.float32)
        if tensor.shape != (dims[modality],):
            raise EmbeddingSizeMismatch(f"{modality} embedding has shape {tuple(tensor.shape)}, "
                                  f"expected ({dims[modality]},)")
        parts.append(tensor)
        flags.append(1.0)
    return torch.cat([*parts, torch.tensor(flags)])
