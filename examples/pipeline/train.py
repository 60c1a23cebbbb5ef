"""Stage 3: fine-tune a LoRA adapter (peft, rank 4 on fc2 and head) on the tiny base model of
tinymodel.py: full-batch Adam with a cosine schedule, on the CPU, deterministic (one thread,
torch's deterministic algorithms, seeded by RUNLOCK_SEED). Writes the adapter (peft's
save_pretrained: adapter_model.safetensors, adapter_config.json, README.md) to model/.

The loss of every epoch is logged to the stage's run. PIPELINE_SLOW_S (tests only) sleeps
half-way, so a test can kill the stage in the middle of training."""
import os
import time

import numpy as np
import torch
import yaml
from peft import LoraConfig, get_peft_model

import runlock
import tinymodel

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
p = yaml.safe_load(open("params.yaml"))["train"]
rows = np.loadtxt("data/split/train.csv", delimiter=",")
x = torch.tensor(rows[:, :-1], dtype=torch.float32)
y = torch.tensor(rows[:, -1], dtype=torch.float32)

torch.manual_seed(int(os.environ.get("RUNLOCK_SEED", "0")))     # LoRA's A matrices start random
lora = LoraConfig(r=p["rank"], lora_alpha=2 * p["rank"], target_modules=["fc2", "head"], lora_dropout=0.0)
model = get_peft_model(tinymodel.base_model(), lora)
# peft keeps target_modules as a set, whose order (and so adapter_config.json's bytes) changes with
# PYTHONHASHSEED from one process to the next; `runlock pipeline verify train` found it
model.peft_config["default"].target_modules = sorted(model.peft_config["default"].target_modules)
opt = torch.optim.Adam([w for w in model.parameters() if w.requires_grad], lr=p["lr"])
schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, p["epochs"])
run = runlock.current_run()
for epoch in range(p["epochs"]):
    opt.zero_grad()
    loss = torch.mean((model(x) - y) ** 2)
    loss.backward()
    opt.step()
    schedule.step()
    if run is not None:
        run.log({"loss": loss.item()}, step=epoch)
    if epoch == p["epochs"] // 2 and os.environ.get("PIPELINE_SLOW_S"):
        time.sleep(float(os.environ["PIPELINE_SLOW_S"]))
model.save_pretrained("model")
