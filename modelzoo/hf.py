"""transformers' models as Vigil uses them."""

from __future__ import annotations

from torch import nn


def quiet_loss_lookup(model: nn.Module) -> None:
    """Give every transformers model inside ``model`` a resolved ``loss_function``.

    transformers warns whenever something reads ``loss_function`` on a model whose loss type
    it does not know, and the tracer reads every attribute of every submodule. Vigil
    computes its losses itself (training) or none (serving), so there is nothing to look up.
    """
    from transformers import PreTrainedModel

    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            module.loss_function = None
