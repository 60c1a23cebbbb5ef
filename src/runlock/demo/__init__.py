"""The end-to-end demo: a LoRA fine-tune of a tiny GPT-2 on generated support tickets, run twice
under runlock to show that the same recipe gives the same loss curve and the same adapter bytes.

    data.py     deterministic ticket dataset (JSONL)
    model.py    local BPE tokenizer, tiny GPT-2, LoRA adapter, deterministic saving
    train.py    the transformers.Trainer loop (CPU, fully deterministic)
    finetune.py ``python -m runlock.demo.finetune``: one LoRA fine-tune as a rerunnable script
    runner.py   ``run_demo(workdir)``: the whole story under runlock, shown with rich
"""
