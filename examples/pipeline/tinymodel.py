"""The base model the example fine-tunes, built in code (no downloads): a 3-layer MLP whose
weights come from a fixed seed, so that train.py and evaluate.py build the same one. It stands in
for a pretrained model; train.py fine-tunes a LoRA adapter on it with peft, evaluate.py applies the
adapter with ``with_adapter`` (W += alpha/r * B @ A, LoRA's own formula), which needs only torch
and safetensors, not peft (whose import costs seconds)."""
import json
import os

import torch
from safetensors.torch import load_file

BASE_SEED = 1234


class TinyMLP(torch.nn.Module):
    def __init__(self, features: int = 4, hidden: int = 64) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(features, hidden)
        self.fc2 = torch.nn.Linear(hidden, hidden)
        self.head = torch.nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.fc2(torch.tanh(self.fc1(x))))).squeeze(-1)


def base_model() -> TinyMLP:
    """The same weights in every process (torch's global generator is left as it was)."""
    with torch.random.fork_rng():
        torch.manual_seed(BASE_SEED)
        return TinyMLP()


def with_adapter(model: TinyMLP, folder: str) -> TinyMLP:
    """``model`` with the LoRA adapter saved in ``folder`` (peft's save_pretrained) merged in."""
    with open(os.path.join(folder, "adapter_config.json")) as f:
        cfg = json.load(f)
    if cfg["peft_type"] != "LORA" or cfg["use_dora"] or cfg["use_rslora"] or cfg["bias"] != "none":
        raise SystemExit(f"{folder}: only a plain LoRA adapter can be applied here")
    w = load_file(os.path.join(folder, "adapter_model.safetensors"))
    scale = cfg["lora_alpha"] / cfg["r"]
    with torch.no_grad():
        for name in cfg["target_modules"]:
            layer = getattr(model, name)
            a, b = w[f"base_model.model.{name}.lora_A.weight"], w[f"base_model.model.{name}.lora_B.weight"]
            layer.weight += scale * b @ a
    return model
