"""Adapter init: LoRA A matrices depend on the global RNG unless drawn from a seeded stream."""

from __future__ import annotations

import pytest

import torch
import peft

from runlock.seeding import seed_everything  # noqa: E402
from runlock.torch import seeded_peft_model  # noqa: E402


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = torch.nn.Linear(8, 8)
        self.v_proj = torch.nn.Linear(8, 8)

    def forward(self, x):
        return self.v_proj(self.q_proj(x))


def _adapter(make, prior_draws: int, **kwargs):
    seed_everything(0, deterministic=False)
    base = Tiny()
    torch.rand(prior_draws)  # any random work between base model and adapter (data, other init)
    config = peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    model = make(base, config, **kwargs)
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_A" in k}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_plain_get_peft_model_depends_on_prior_randomness():
    assert not _same(_adapter(peft.get_peft_model, 1), _adapter(peft.get_peft_model, 2))


def test_seeded_adapter_weights_are_identical_for_the_same_seed():
    a = _adapter(seeded_peft_model, 1)
    b = _adapter(seeded_peft_model, 2)
    assert len(a) == 2 and _same(a, b)
    assert not _same(a, _adapter(seeded_peft_model, 1, root=1))
