"""Integrations with training frameworks: ``hf`` (transformers.Trainer), ...

Each module imports its framework at the top; import the one you need.
"""
