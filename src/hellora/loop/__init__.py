"""The plain training loop and what it stands on, a component below the stages that train (the profiling warm-up
and the training stage): `training.py` (the accelerate loop, its schedule, the NaN guard), `checkpoint.py`
(verified resumable checkpoints), `fsdp.py` (FSDP2 sharding of the frozen base), `run_inputs.py` (a run's
tokenizer, model, features and accelerator, loaded and checked before any folder is touched)."""
