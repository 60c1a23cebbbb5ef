"""Seeded adapter initialisation.

``peft.get_peft_model`` draws LoRA ``A`` matrices from torch's global RNG, and ``LoraConfig`` has
no seed, so adapter weights depend on every random draw made before it. ``seeded_peft_model``
draws them from the named stream ``adapter-init`` instead: same root seed, same adapter weights.
"""

from __future__ import annotations

from typing import Any

from runlock.torch.rng import seeded


def seeded_peft_model(model: Any, config: Any, *, root: int | None = None,
                      stream: str = "adapter-init", **kwargs: Any) -> Any:
    """``peft.get_peft_model(model, config, **kwargs)`` inside ``seeded(stream, root=root)``."""
    from peft import get_peft_model

    with seeded(stream, root=root):
        return get_peft_model(model, config, **kwargs)
