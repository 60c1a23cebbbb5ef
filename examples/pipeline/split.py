"""Stage 2: a seeded train/test split of data/all.csv into data/split/."""
import os

import numpy as np
import yaml

frac = yaml.safe_load(open("params.yaml"))["split"]["test_fraction"]
rows = np.loadtxt("data/all.csv", delimiter=",")
order = np.random.default_rng(int(os.environ.get("RUNLOCK_SEED", "0"))).permutation(len(rows))
cut = int(len(rows) * frac)
os.makedirs("data/split", exist_ok=True)
np.savetxt("data/split/test.csv", rows[order[:cut]], delimiter=",", fmt="%.17g")
np.savetxt("data/split/train.csv", rows[order[cut:]], delimiter=",", fmt="%.17g")
