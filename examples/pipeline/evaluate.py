"""Stage 4: evaluate the model on the test split; write metrics.json."""
import json

import numpy as np

rows = np.loadtxt("data/split/test.csv", delimiter=",")
x, y = np.column_stack([rows[:, :-1], np.ones(len(rows))]), rows[:, -1]
w = np.load("model/weights.npy")
mse = float(np.mean((x @ w - y) ** 2))
with open("metrics.json", "w") as f:
    json.dump({"test_mse": mse, "test_rmse": mse ** 0.5, "n_test": len(y)}, f, indent=2, sort_keys=True)
