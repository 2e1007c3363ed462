"""Writes the paper's recipe grid: recipes/<backbone>/<task>-<method>.yaml (run once after editing this file).

    python recipes/make_recipes.py

Values are the paper's (Section 4.1, Table 7): r=32, alpha=64, 10% LoRA warm-up, k = 8 / 2 / 12, learning rates
and epochs per task, global batch 128 (PEFT) or 256 (full fine-tuning). Learning rate, epochs and batch are left
unset in the files so that `RunConfig.resolved()` fills the paper's values for the task and method.
"""

from pathlib import Path

from hellora.models.presets import PRESETS

# hub id, the paper's k and remote code come from the presets, the one place they are kept
BACKBONES = {name: (PRESETS[name].hub_id, PRESETS[name].k, PRESETS[name].remote_code)
             for name in ("olmoe-1b-7b", "mixtral-8x7b", "deepseek-moe-16b")}
TASKS = {
    "gsm8k": "data: {task: gsm8k}   # openai/gsm8k (main); or data.train=path/to/train.jsonl",
    "codealpaca": "data: {task: codealpaca}   # sahil2801/CodeAlpaca-20k; or data.train=path/to/code_alpaca.json",
    "saferpaca": "data: {task: saferpaca, train: path/to/saferpaca.json}   # Alpaca + safety instructions: supply it",
}
METHODS = {
    "lora": "adapter: {method: lora, r: 32, alpha: 64, targets: all}\nprofile: {mode: none}",
    "hellora": "adapter: {method: hellora, r: 32, alpha: 64, targets: all}\n"
               "profile: {mode: warmup, fraction: 0.1, seed: 0}\nselection: {strategy: layer, k: K}",
}


def main() -> None:
    root = Path(__file__).parent
    for backbone, (hub_id, k, remote) in BACKBONES.items():
        for task, data in TASKS.items():
            for method, adapter in METHODS.items():
                text = (f"# {method} on {backbone}, {task} (HELLoRA paper setup; k={k})\n"
                        f"model: {{name: {hub_id}, dtype: bfloat16{', trust_remote_code: true' if remote else ''}}}\n"
                        f"{data}\n{adapter.replace('K', str(k))}\n"
                        f"train: {{micro_batch_size: 8, seed: 42, gradient_checkpointing: true}}\n"
                        f"output_dir: runs/{backbone}/{task}-{method}\n")
                path = root / backbone / f"{task}-{method}.yaml"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)


if __name__ == "__main__":
    main()
