"""Stage 1: make a synthetic regression data set (seeded by RUNLOCK_SEED)."""
import os

import numpy as np
import yaml

p = yaml.safe_load(open("params.yaml"))["prepare"]
rng = np.random.default_rng(int(os.environ.get("RUNLOCK_SEED", "0")))
x = rng.normal(size=(p["n"], 4))
y = x @ np.array([1.5, -2.0, 0.5, 3.0]) + 0.7 + p["noise"] * rng.normal(size=p["n"])
os.makedirs("data", exist_ok=True)
np.savetxt("data/all.csv", np.column_stack([x, y]), delimiter=",", fmt="%.17g")
