"""Cost of deterministic mode on a small transformer training step: steps/s on and off.

    python bench/bench_determinism.py [--device cpu|cuda] [--steps 30] [--rounds 5] [--threads N]

Both modes run in one process, in alternating rounds (off, on, off, on, …) so that drift in clock
speed or memory state hits both alike; each round is timed after a warm-up step. "on" is
``runlock.seeding.seed_everything(seed, deterministic=True)`` (torch deterministic algorithms,
cuDNN deterministic, no cuDNN benchmark); "off" is ``seed_everything(seed, deterministic=False)``
after resetting those flags to torch's defaults. CUBLAS_WORKSPACE_CONFIG=:4096:8 is set before CUDA
starts (deterministic cuBLAS needs it, and it cannot change later), so it applies to both modes.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402

from runlock.seeding import seed_everything  # noqa: E402

VOCAB, SEQ, BATCH, D_MODEL, LAYERS, HEADS = 1000, 64, 16, 128, 2, 4


class TinyLM(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, D_MODEL)
        layer = torch.nn.TransformerEncoderLayer(D_MODEL, HEADS, 4 * D_MODEL, dropout=0.1, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, LAYERS)
        self.head = torch.nn.Linear(D_MODEL, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = torch.nn.Transformer.generate_square_subsequent_mask(tokens.shape[1], device=tokens.device)
        return self.head(self.encoder(self.embed(tokens), mask=mask, is_causal=True))


def set_mode(deterministic: bool) -> None:
    if not deterministic:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = False
    seed_everything(0, deterministic=deterministic)


def timed_round(model, opt, tokens, steps: int, device: str) -> float:
    def step() -> None:
        logits = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: kernel selection for this mode
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(0, deterministic=False)
    model = TinyLM().to(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ + 1), device=args.device)
    rates: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        for mode in ("off", "on"):
            set_mode(mode == "on")
            rates[mode].append(timed_round(model, opt, tokens, args.steps, args.device))
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    print(json.dumps({
        "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "model": f"{LAYERS}-layer encoder, d_model {D_MODEL}, batch {BATCH}x{SEQ}, vocab {VOCAB}",
        "steps_per_round": args.steps, "rounds": args.rounds,
        "off_steps_per_s": round(off, 2), "on_steps_per_s": round(on, 2),
        "slowdown_pct": round(100 * (off - on) / off, 1),
        "rounds_off": [round(r, 2) for r in rates["off"]], "rounds_on": [round(r, 2) for r in rates["on"]],
    }, indent=1))


if __name__ == "__main__":
    main()
