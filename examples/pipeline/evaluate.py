"""Stage 4: the base model with the LoRA adapter of model/ applied, on the test split; writes
metrics.json. Needs torch and safetensors only (tinymodel.with_adapter merges the adapter)."""
import json

import numpy as np
import torch

import tinymodel

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
rows = np.loadtxt("data/split/test.csv", delimiter=",")
x = torch.tensor(rows[:, :-1], dtype=torch.float32)
y = torch.tensor(rows[:, -1], dtype=torch.float32)
model = tinymodel.with_adapter(tinymodel.base_model(), "model").eval()
with torch.no_grad():
    mse = torch.mean((model(x) - y) ** 2).item()
with open("metrics.json", "w") as f:
    json.dump({"test_mse": mse, "test_rmse": mse ** 0.5, "n_test": len(y)}, f, indent=2, sort_keys=True)
