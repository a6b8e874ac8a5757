"""LoRA on an encoder's linear layers through peft (MINT-IQA's LoRA variant, r = 16)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def linear_layer_names(module: nn.Module) -> list[str]:
    """Full names of the ``nn.Linear`` layers inside ``module``."""
    return [name for name, child in module.named_modules() if isinstance(child, nn.Linear)]


def apply_lora(
    module: nn.Module,
    r: int = 16,
    alpha: int = 32,
    target_modules: Sequence[str] | None = None,
    dropout: float = 0.0,
) -> nn.Module:
    """Inject LoRA adapters into ``module`` in place; afterwards only the LoRA parameters of ``module`` train.

    Args:
        module: Usually ``model.encoder`` (the method head around it keeps its own trainability).
        r: LoRA rank.
        alpha: LoRA scaling numerator (the update is scaled by ``alpha / r``).
        target_modules: Names (or name suffixes) of the layers to adapt; default every ``nn.Linear`` of
            ``module``.
        dropout: Dropout on the LoRA input.

    Returns:
        ``module`` itself.
    """
    from peft import LoraConfig, inject_adapter_in_model

    targets = list(target_modules) if target_modules is not None else linear_layer_names(module)
    if not targets:
        raise ValueError(f"apply_lora: {type(module).__name__} has no nn.Linear layer; name layers in target_modules")
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none")
    inject_adapter_in_model(config, module)
    for name, param in module.named_parameters():
        param.requires_grad_("lora_" in name)
    return module
