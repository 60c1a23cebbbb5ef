"""Stage 3: fine-tune a tiny linear model with full-batch gradient descent (numpy, CPU, < 1 s).

It stands in for a LoRA fine-tune to keep the example cheap; the loss of every epoch is logged to
the stage's run. PIPELINE_SLOW_S (tests only) sleeps half-way, so a test can kill it mid-stage."""
import os
import time

import numpy as np
import yaml

import runlock

p = yaml.safe_load(open("params.yaml"))["train"]
rows = np.loadtxt("data/split/train.csv", delimiter=",")
x, y = np.column_stack([rows[:, :-1], np.ones(len(rows))]), rows[:, -1]
w = np.random.default_rng(int(os.environ.get("RUNLOCK_SEED", "0"))).normal(scale=0.01, size=x.shape[1])
run = runlock.current_run()
for epoch in range(p["epochs"]):
    err = x @ w - y
    w -= p["lr"] * 2 * x.T @ err / len(y)
    if run is not None:
        run.log({"loss": float(np.mean(err ** 2))}, step=epoch)
    if epoch == p["epochs"] // 2 and os.environ.get("PIPELINE_SLOW_S"):
        time.sleep(float(os.environ["PIPELINE_SLOW_S"]))
os.makedirs("model", exist_ok=True)
np.save("model/weights.npy", w)
with open("model/config.yaml", "w") as f:
    yaml.safe_dump({"features": 4, "bias": True, "lr": p["lr"], "epochs": p["epochs"]}, f)
