"""The demo's model: a local byte-level BPE tokenizer, a tiny GPT-2 and a LoRA adapter on it.

Nothing is downloaded. The tokenizer is trained on the training texts and the base model is built
from a ``GPT2Config`` (:class:`BaseRecipe`), pre-trained in full, saved, and then fine-tuned
through a LoRA adapter (:class:`LoraRecipe`), as one would fine-tune a hub model.

``peft`` draws the LoRA A matrices from the *global* torch RNG (``LoraConfig`` has no seed), so
the base init and ``get_peft_model`` each run in a ``runlock.torch`` seeded stream derived from
the recipe seed (``model-init``, ``lora-init``): the global RNG is forked, seeded and put back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from runlock.demo.data import Ticket
from runlock.errors import InvalidInput
from runlock.torch import seeded, seeded_peft_model

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"


@dataclass(frozen=True)
class BaseRecipe:
    """The base model: tokenizer and tiny GPT-2, pre-trained in full on the ticket texts."""

    seed: int = 42
    data_seed: int = 42
    vocab_size: int = 1024
    n_layer: int = 2
    n_embd: int = 96
    n_head: int = 4
    seq_len: int = 64
    max_steps: int = 150
    batch_size: int = 16
    learning_rate: float = 3e-3
    warmup_steps: int = 10
    weight_decay: float = 0.01
    torch_threads: int = 1

    def to_config(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LoraRecipe:
    """The fine-tune: a LoRA adapter on the base model's attention. Same recipe, same base, same
    data, same process: same adapter bytes."""

    seed: int = 42
    data_seed: int = 42
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target: tuple[str, ...] = ("c_attn",)
    max_steps: int = 60
    batch_size: int = 16
    learning_rate: float = 5e-3
    warmup_steps: int = 5
    weight_decay: float = 0.0
    torch_threads: int = 1

    def to_config(self) -> dict[str, Any]:
        cfg = asdict(self)
        cfg["lora_target"] = list(self.lora_target)
        return cfg


def format_ticket(ticket: Ticket, *, label: bool = True) -> str:
    """The training text for one ticket: its label (fine-tune only), the message and the reply."""
    prefix = f"[{ticket.category}] " if label else ""
    return f"{prefix}Customer: {ticket.text}\nAgent: {ticket.reply}"


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts`` only (deterministic for the same texts)."""
    if not texts:
        raise InvalidInput("Cannot train a tokenizer on no texts.")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS,
                                   pad_token=PAD)


class TicketLM(torch.utils.data.Dataset):
    """Fixed-length causal-LM examples: ``input_ids``, ``attention_mask``, ``labels`` (-100 on pad)."""

    def __init__(self, texts: Sequence[str], tokenizer: PreTrainedTokenizerFast, seq_len: int):
        enc = tokenizer([f"{BOS}{t}{EOS}" for t in texts], max_length=seq_len, truncation=True,
                        padding="max_length", return_tensors="pt")
        self.input_ids = enc["input_ids"]
        self.attention_mask = enc["attention_mask"]
        self.labels = self.input_ids.masked_fill(self.attention_mask == 0, -100)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[i], "attention_mask": self.attention_mask[i],
                "labels": self.labels[i]}


def build_base(recipe: BaseRecipe, tokenizer: PreTrainedTokenizerFast) -> GPT2LMHeadModel:
    """A freshly initialised tiny GPT-2 sized for ``tokenizer``; same recipe, same weights."""
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=recipe.seq_len, n_embd=recipe.n_embd,
        n_layer=recipe.n_layer, n_head=recipe.n_head, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    with seeded("model-init", root=recipe.seed):
        return GPT2LMHeadModel(config)


def add_lora(recipe: LoraRecipe, base: GPT2LMHeadModel) -> PeftModel:
    """Wrap ``base`` in a fresh LoRA adapter; same recipe, same adapter init."""
    lora = LoraConfig(r=recipe.lora_r, lora_alpha=recipe.lora_alpha,
                      lora_dropout=recipe.lora_dropout, target_modules=list(recipe.lora_target),
                      fan_in_fan_out=True, bias="none", task_type="CAUSAL_LM")
    return seeded_peft_model(base, lora, root=recipe.seed, stream="lora-init")


def _sorted_json(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(data, sort_keys=True, indent=2) + "\n", encoding="utf-8")


def save_base(model: GPT2LMHeadModel, tokenizer: PreTrainedTokenizerFast,
              directory: str | Path) -> Path:
    """Save weights (safetensors), config and tokenizer, loadable with :func:`load_base`."""
    directory = Path(directory)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    for name in ("config.json", "generation_config.json", "tokenizer_config.json"):
        if (directory / name).exists():
            _sorted_json(directory / name)
    return directory


def load_base(directory: str | Path) -> tuple[GPT2LMHeadModel, PreTrainedTokenizerFast]:
    """The base model and tokenizer saved by :func:`save_base` (local files only)."""
    tokenizer = PreTrainedTokenizerFast.from_pretrained(directory, local_files_only=True)
    model = GPT2LMHeadModel.from_pretrained(directory, local_files_only=True)
    return model, tokenizer


def save_adapter(model: PeftModel, directory: str | Path, *, base_name: str) -> Path:
    """``save_pretrained`` the adapter with ``base_name`` (not the local path the base was
    loaded from) as its base model, and sorted keys in ``adapter_config.json``, so the folder's
    bytes depend on the recipe and the base only."""
    directory = Path(directory)
    for config in model.peft_config.values():
        config.base_model_name_or_path = base_name
    base = model.get_base_model()   # the model card reads these two
    base.config.name_or_path = base.name_or_path = base_name
    # "auto" would look base_name up on the hub to see whether the vocabulary changed: it did not.
    model.save_pretrained(directory, safe_serialization=True, save_embedding_layers=False)
    _sorted_json(directory / "adapter_config.json")
    return directory
