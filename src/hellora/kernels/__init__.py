"""Grouped expert math: sorting token->expert assignments, grouped linear layers, and the expert-subset
LoRA op. `reference.py` is the plain PyTorch version that runs everywhere and is the numerical reference for
any faster kernel."""
