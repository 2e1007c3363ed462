"""One object per adapter method (and variant): its rules, registered once in `registry.py`.

    rules = AdapterConfig(method="hellora", variant="lori_d").rules   # or registry.get_method(method, variant)
    rules.adapts_hot_experts, rules.label, rules.adapter_entries(matrix, config)

The rest of hellora asks this object (which experts it adapts, its layers, its counts, its FSDP and export rules,
its report label, its bench setup) and never branches on the method's name. See docs/architecture.md, "A new method".
"""
