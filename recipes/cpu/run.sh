#!/usr/bin/env bash
# The whole CLI on CPU, on the demo's model: every step in at most ~2 minutes on 2 cores, no download.
# Run from the repository root:  bash recipes/cpu/run.sh   (add --overwrite to any step to redo it)
set -euo pipefail
[ -d hellora-demo/base-model ] || hellora demo --out hellora-demo        # pretrained skill MoE + its data

hellora profile recipes/cpu/sort-hellora.yaml --out runs/cpu/profile.json             # routing counts
hellora select --profile runs/cpu/profile.json --strategy layer --k 2 --out runs/cpu/placement.json
hellora train recipes/cpu/sort-hellora.yaml                                            # warm-up profile + HELLoRA
hellora train recipes/cpu/sort-hellora.yaml selection.path=runs/cpu/placement.json \
    output_dir=runs/cpu/sort-hellora-placed                                            # from the saved placement
hellora train recipes/cpu/sort-lora.yaml                                               # LoRA on every expert
hellora export --adapter runs/cpu/sort-hellora/adapter --format peft --out runs/cpu/sort-hellora-peft
hellora export --adapter runs/cpu/sort-hellora/adapter --format merged --out runs/cpu/sort-hellora-merged
hellora eval --task skill --model runs/cpu/sort-hellora-merged --data hellora-demo/data/sort-test.jsonl \
    --out runs/cpu/eval-merged                                                          # sort accuracy, merged
hellora eval --task skill --adapter runs/cpu/sort-hellora/adapter --data hellora-demo/data/sort-test.jsonl \
    --out runs/cpu/eval-adapter                                                         # base + adapter
hellora eval --task skill --model hellora-demo/base-model --data hellora-demo/data/sort-test.jsonl \
    --out runs/cpu/eval-base                                                            # the base, before tuning
hellora report runs/cpu/sort-hellora runs/cpu/sort-lora --out runs/cpu/report --quiet
