"""The weight shapes of a preset's architecture from its config values alone: no torch, no transformers.

Why: `hellora params --model mixtral-8x7b` should answer before a user's finger leaves the key. Building the model
on the meta device needs torch and transformers (about 2 s of imports, 4 s in all); the shapes of the four preset
families are simple enough to write down. The meta-device count stays the reference: tests check that both agree
for every preset, method, variant and target set, and on reduced configs of each family.

Every family here has the same skeleton (weights are (out, in), as nn.Linear stores them):

    embeddings      embed_tokens (V, H); lm_head (V, H) unless tied; the final norm (H)
    each layer      attention q (heads*d, H), k and v (kv_heads*d, H), o (H, heads*d), with d the head dim;
                    OLMoE adds q_norm (H) and k_norm (kv_heads*d), Qwen3-MoE q_norm and k_norm (d each);
                    two RMSNorms (H each)
    a MoE layer     router (E, H); E experts of gate (I, H), up (I, H), down (H, I) (fused in transformers as
                    gate_up_proj (E, 2I, H) and down_proj (E, H, I): the same entries); DeepSeekMoE adds its shared
                    experts as one MLP of width I * n_shared_experts
    a dense layer   one MLP (gate, up, down) of width `intermediate_size` (DeepSeekMoE's first layers)
"""

from __future__ import annotations

from dataclasses import dataclass

from hellora.utils.errors import HelloraError


@dataclass(frozen=True)
class Matrix:
    """One (out, in) weight that an adapter can wrap."""

    out: int
    inp: int

    @property
    def size(self) -> int:
        return self.out * self.inp


def mlp(hidden: int, intermediate: int) -> tuple[Matrix, Matrix, Matrix]:
    """gate (I, H), up (I, H), down (H, I) of one gated MLP or one expert."""
    return Matrix(intermediate, hidden), Matrix(intermediate, hidden), Matrix(hidden, intermediate)


@dataclass(frozen=True)
class LayerShapes:
    """One decoder layer. `expert` is one routed expert's (gate, up, down); `norms` counts the entries no adapter
    touches (layer norms, q/k norms)."""

    attention: tuple[Matrix, ...]
    norms: int
    router: Matrix | None = None
    expert: tuple[Matrix, ...] = ()
    num_experts: int = 0
    shared: tuple[Matrix, ...] = ()
    dense: tuple[Matrix, ...] = ()

    @property
    def is_moe(self) -> bool:
        return self.router is not None

    @property
    def size(self) -> int:
        matrices = self.attention + self.shared + self.dense + ((self.router,) if self.router else ())
        return sum(m.size for m in matrices) + self.num_experts * sum(m.size for m in self.expert) + self.norms


@dataclass(frozen=True)
class ModelShapes:
    """A whole model. `router_modules`: the router is a module of the remote-code layout (DeepSeekMoE's `MoEGate`),
    which hellora does not adapt unless asked (`AdapterConfig.router`); fused families' routers are adapted."""

    model_type: str
    layers: tuple[LayerShapes, ...]
    root: int                 # embeddings, lm_head and the final norm: everything outside the decoder layers
    hidden: int
    vocab: int
    top_k: int
    router_modules: bool = False

    @property
    def moe_layers(self) -> tuple[LayerShapes, ...]:
        return tuple(layer for layer in self.layers if layer.is_moe)

    @property
    def moe_layer_indices(self) -> list[int]:
        return [i for i, layer in enumerate(self.layers) if layer.is_moe]

    @property
    def num_experts(self) -> int:
        return self.moe_layers[0].num_experts

    @property
    def expert_intermediate(self) -> int:
        return self.moe_layers[0].expert[0].out

    @property
    def size(self) -> int:
        return self.root + sum(layer.size for layer in self.layers)


def _attention(c: dict, qk_norms: str | None, head_dim: int | None = None) -> tuple[tuple[Matrix, ...], int]:
    """(q, k, v, o) and the entries of the q/k norms: "full" (OLMoE: over heads*d and kv_heads*d) or "head" (Qwen3).
    `head_dim`: the family's default when the config has none (else hidden / heads)."""
    h, heads = c["hidden_size"], c["num_attention_heads"]
    kv = c.get("num_key_value_heads") or heads
    d = c.get("head_dim") or head_dim or h // heads
    matrices = (Matrix(heads * d, h), Matrix(kv * d, h), Matrix(kv * d, h), Matrix(h, heads * d))
    norms = {"full": heads * d + kv * d, "head": 2 * d, None: 0}[qk_norms]
    return matrices, norms


def _moe_layer(c: dict, attention, norms: int, experts: int, intermediate: int, shared: int = 0) -> LayerShapes:
    h = c["hidden_size"]
    return LayerShapes(attention, norms, router=Matrix(experts, h), expert=mlp(h, intermediate), num_experts=experts,
                       shared=mlp(h, intermediate * shared) if shared else ())


def _layers(c: dict) -> tuple[tuple[LayerShapes, ...], int, bool]:
    """(layers, router top-k, router_modules) of one family's config values."""
    kind, h, n = c["model_type"], c["hidden_size"], c["num_hidden_layers"]
    norms = 2 * h
    for flag in ("attention_bias", "mlp_bias"):
        if c.get(flag):
            raise HelloraError(f"{flag}: biases have no shape rule here; count this model on the meta device")
    if kind in ("olmoe", "qwen3_moe"):
        attention, qk = _attention(c, "full" if kind == "olmoe" else "head", None if kind == "olmoe" else 128)
        width = c["intermediate_size"] if kind == "olmoe" else c["moe_intermediate_size"]
        if kind == "qwen3_moe" and (c.get("mlp_only_layers") or c.get("decoder_sparse_step", 1) != 1):
            raise HelloraError("qwen3_moe with dense layers (mlp_only_layers, decoder_sparse_step) is counted on "
                               "the meta device, not from its config values")
        layer = _moe_layer(c, attention, norms + qk, c["num_experts"], width)
        return (layer,) * n, c["num_experts_per_tok"], False
    if kind == "mixtral":
        attention, _ = _attention(c, None)
        layer = _moe_layer(c, attention, norms, c["num_local_experts"], c["intermediate_size"])
        return (layer,) * n, c["num_experts_per_tok"], False
    if kind == "deepseek":
        attention, _ = _attention(c, None)
        moe = _moe_layer(c, attention, norms, c["n_routed_experts"], c["moe_intermediate_size"],
                         shared=c.get("n_shared_experts") or 0)
        dense = LayerShapes(attention, norms, dense=mlp(h, c["intermediate_size"]))
        first, freq = c.get("first_k_dense_replace", 0), c.get("moe_layer_freq", 1)
        return tuple(moe if i >= first and i % freq == 0 else dense for i in range(n)), c["num_experts_per_tok"], True
    raise HelloraError(f"model_type {kind!r}: no shape rule (families: olmoe, mixtral, qwen3_moe, deepseek); "
                       "count it on the meta device")


def model_shapes(config: dict) -> ModelShapes:
    """Shapes of a model of the preset families (olmoe, mixtral, qwen3_moe, deepseek) from its config values."""
    layers, top_k, router_modules = _layers(config)
    if not any(layer.is_moe and layer.num_experts > 0 for layer in layers):
        raise HelloraError(f"model_type {config['model_type']!r}: this config has no MoE layer (no routed experts)")
    h, v = config["hidden_size"], config["vocab_size"]
    heads = 1 if config.get("tie_word_embeddings", False) else 2
    return ModelShapes(config["model_type"], layers, root=heads * v * h + h, hidden=h, vocab=v, top_k=top_k,
                       router_modules=router_modules)
