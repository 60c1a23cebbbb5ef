"""A plain PyTorch training loop recorded by runlock: layered config, seeding, metrics, summary.

    python examples/plain_pytorch.py                       # defaults below
    python examples/plain_pytorch.py conf.yaml lr=3e-3 model.hidden=32

Arguments ending in .yaml/.yml/.json are config files (later ones win), ``key=value`` arguments
override them. Then: ``runlock runs list --where "summary.val_loss < 0.1"``,
``runlock config explain RUN``, ``runlock metrics RUN --key train/loss --csv``.
"""

from __future__ import annotations

import sys

import torch

import runlock
from runlock.config import resolve

DEFAULTS = {"lr": 1e-2, "epochs": 3, "batch_size": 32, "seed": 0, "model": {"hidden": 16}}


def data(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 4, generator=g)
    return x, (x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])).tanh()


def main(argv: list[str]) -> str:
    files = [a for a in argv if a.endswith((".yaml", ".yml", ".json"))]
    cfg = resolve(files, [a for a in argv if "=" in a], defaults=DEFAULTS)
    c = cfg.values
    with runlock.start_run(project="plain-pytorch", config=cfg, seed=c["seed"]) as run:
        runlock.seed_everything(c["seed"])
        x, y = data(c["seed"])
        split = int(0.8 * len(x))
        model = torch.nn.Sequential(torch.nn.Linear(4, c["model"]["hidden"]), torch.nn.ReLU(),
                                    torch.nn.Linear(c["model"]["hidden"], 1))
        opt = torch.optim.Adam(model.parameters(), lr=c["lr"])
        step = 0
        for epoch in range(c["epochs"]):
            for i in range(0, split, c["batch_size"]):
                loss = torch.nn.functional.mse_loss(model(x[i:i + c["batch_size"]]), y[i:i + c["batch_size"]])
                opt.zero_grad()
                loss.backward()
                opt.step()
                run.log({"train/loss": loss.detach(), "epoch": epoch}, step=step)   # returns at once
                step += 1
            with torch.no_grad():
                val = torch.nn.functional.mse_loss(model(x[split:]), y[split:]).item()
            run.log({"val/loss": val}, step=step)
            run.flush()   # an epoch's points are durable even if the process dies now
        run.set_summary({"val/loss": val, "steps": step})
    return run.id


if __name__ == "__main__":
    print(main(sys.argv[1:]))
