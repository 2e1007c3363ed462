"""hellora: hot-expert LoRA for Mixture-of-Experts language models.

The method (HELLoRA, arXiv 2605.18795): profile which experts a task routes to, keep LoRA only on the
top-k "hot" experts of each MoE layer (plus attention and router), and leave cold experts frozen at zero
adapter cost.
"""

__version__ = "0.1.0"
