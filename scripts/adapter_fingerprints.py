"""Fingerprint the adapters every method writes on tiny models, to prove a refactor changed nothing they compute.

    python scripts/adapter_fingerprints.py record before.json     # on the code before the change
    python scripts/adapter_fingerprints.py record after.json      # on the code after it
    python scripts/adapter_fingerprints.py compare before.json after.json

`record` runs `hellora train` on a tiny OLMoE and real GSM8K lines (HELLORA_DATASETS) for every method, variant
and target set, and attaches random-init adapters directly on tiny models of several families; it stores the
sha256 of every tensor file each run writes (adapter safetensors, or the fft model) and the parameter counts of
`parameter_report`. `compare` exits 1 on any difference. Runs on CPU in a few minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

DATASETS = Path(os.environ.get("HELLORA_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))

TRAIN_CASES = {
    "hellora": [],
    "hellora-forward-cold": ["profile.mode=forward", "selection.strategy=cold"],
    "hellora-pure": ["adapter.placement=pure"],
    "hellora-gate": ["adapter.placement=gate"],
    "hellora-dora": ["adapter.variant=dora"],
    "hellora-lori_d": ["adapter.variant=lori_d"],
    "hellora-lori_s": ["adapter.variant=lori_s", "adapter.lori_from={runs}/hellora-lori_d/adapter"],
    "lora": ["adapter.method=lora"],
    "lora-dora": ["adapter.method=lora", "adapter.variant=dora"],
    "lora-lori_d": ["adapter.method=lora", "adapter.variant=lori_d"],
    "lora-lori_s": ["adapter.method=lora", "adapter.variant=lori_s", "adapter.lori_from={runs}/lora-lori_d/adapter"],
    "loramoe": ["adapter.method=loramoe"],
    "fft": ["adapter.method=fft"],
}

ATTACH_CASES = [  # (method, variant, targets)
    ("hellora", "none", "all"), ("hellora", "none", "pure"), ("hellora", "dora", "gate"), ("hellora", "lori_d", "all"),
    ("lora", "none", "all"), ("lora", "dora", "all"), ("loramoe", "none", "all"),
]
FAMILIES = ["olmoe", "qwen2_moe", "deepseek_v2", "gpt_oss"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tensor_files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): _sha(p) for p in sorted(folder.rglob("*.safetensors"))}


def _recipe(model_dir: Path, out: Path) -> str:
    gsm8k = DATASETS / "gsm8k" / "train.jsonl"
    return (f"model: {{name: {model_dir}, dtype: float32}}\n"
            f"data: {{task: gsm8k, train: {gsm8k}, limit: 32, max_length: 96, max_prompt_length: 64}}\n"
            "profile: {mode: warmup, fraction: 0.5}\n"
            "adapter: {method: hellora, r: 4, alpha: 8}\n"
            "train: {batch_size: 8, micro_batch_size: 4, max_steps: 3, save_steps: 0, logging_steps: 1, "
            "learning_rate: 0.002}\n"
            f"output_dir: {out}\n")


def _train_cases(tmp: Path) -> dict:
    from hellora.cli import main
    from hellora.data import build_tiny_tokenizer
    from hellora.models.tiny import tiny_model

    model_dir = tmp / "model"
    tiny_model("olmoe", vocab_size=104).save_pretrained(model_dir)
    build_tiny_tokenizer().save_pretrained(model_dir)
    runs = tmp / "runs"
    out = {}
    for name, overrides in TRAIN_CASES.items():
        recipe = tmp / f"{name}.yaml"
        recipe.write_text(_recipe(model_dir, runs / name))
        args = [o.replace("{runs}", str(runs)) for o in overrides]
        if main(["train", str(recipe), *args, "--no-progress"]) != 0:
            raise SystemExit(f"train case {name} failed")
        out[name] = _tensor_files(runs / name / ("model" if name == "fft" else "adapter"))
        placement = runs / name / "placement.json"
        if placement.exists():
            out[name]["placement.experts"] = json.loads(placement.read_text())["experts"]
    return out


def _attach_cases(tmp: Path) -> dict:
    import torch

    from hellora.adapters import AdapterConfig, attach_adapters
    from hellora.adapters.io import save_adapter
    from hellora.models.families import describe_moe_model
    from hellora.models.tiny import tiny_model
    from hellora.placement import HotExpertPlacement

    out = {}
    for family in FAMILIES:
        for method, variant, targets in ATTACH_CASES:
            torch.manual_seed(0)
            model = tiny_model(family)
            spec = describe_moe_model(model)
            placement = HotExpertPlacement({l: [1, 4] for l in spec.moe_layer_indices}, spec.num_experts, "layer")
            config = AdapterConfig(method=method, variant=variant, r=4, alpha=8, init="random", seed=3,
                                   **{"placement": targets})
            attach_adapters(model, config, placement if method == "hellora" else None)
            folder = tmp / "attach" / f"{family}-{method}-{variant}-{targets}"
            save_adapter(model, folder)
            x = torch.randint(3, 100, (2, 7))
            with torch.no_grad():
                logits = model(input_ids=x).logits
            out[folder.name] = {**_tensor_files(folder),
                                "logits": hashlib.sha256(logits.numpy().tobytes()).hexdigest()}
    return out


def _param_reports() -> dict:
    try:
        from hellora.adapters.accounting import parameter_report
    except ImportError:  # the layout before parameter accounting moved into adapters/
        from hellora.adapters.accounting import parameter_report
    try:
        from hellora.adapters.accounting import count_request
    except ImportError:
        count_request = None

    out = {}
    for method, variant in [("hellora", "none"), ("lora", "none"), ("loramoe", "none"), ("fft", "none"),
                            ("hellora", "dora"), ("hellora", "lori_d"), ("hellora", "lori_s"), ("lora", "lori_s")]:
        for model in ("olmoe-1b-7b", "deepseek-moe-16b"):
            if count_request is None:  # before parameter_report took the AdapterConfig whole
                r = parameter_report(model, method, variant=variant, trust_remote_code=True)
            else:
                r = parameter_report(model, count_request(method, variant=variant), trust_remote_code=True)
            out[f"{model}-{method}-{variant}"] = {k: r[k] for k in ("trainable", "total", "by_role", "k", "r")}
    return out


def record(path: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = {"train": _train_cases(Path(tmp)), "attach": _attach_cases(Path(tmp)), "params": _param_reports()}
    Path(path).write_text(json.dumps(result, indent=1, sort_keys=True))
    print(f"wrote {path}: {sum(len(v) for v in result.values())} cases")


def compare(a: str, b: str) -> int:
    before, after = json.loads(Path(a).read_text()), json.loads(Path(b).read_text())
    diffs = 0
    for group in sorted(set(before) | set(after)):
        for case in sorted(set(before.get(group, {})) | set(after.get(group, {}))):
            x, y = before.get(group, {}).get(case), after.get(group, {}).get(case)
            if x != y:
                diffs += 1
                print(f"DIFFERENT {group}/{case}:\n  before {x}\n  after  {y}")
    print("identical" if not diffs else f"{diffs} cases differ")
    return 1 if diffs else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "record":
        record(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
