"""Training: the accelerate loop, safetensors checkpoints, the paper's LoRA warm-up, and the one-command pipeline
(profile -> select -> attach -> train -> save -> evaluate)."""
