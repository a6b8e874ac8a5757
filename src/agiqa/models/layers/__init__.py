"""Building blocks the methods share: score heads, cross-modal fusion, the Q-Former, LoRA adapters."""
