#!/usr/bin/env bash
# The README's CPU walk-through, line for line, on the demo's model: each step in about a minute on 2 cores, no
# download. Run from the repository root:
#   bash recipes/cpu/run.sh               # an output that exists is refused (nothing is changed)
#   bash recipes/cpu/run.sh --overwrite   # every step redone (any flag given is passed to every command)
# tests/cli/test_run_sh.py holds these lines equal to the README's block.
set -euo pipefail
[ -d hellora-demo/base-model ] || hellora demo --out hellora-demo        # pretrained skill MoE + its data

hellora profile recipes/cpu/sort-hellora.yaml --out runs/cpu/profile.json "$@"
hellora select  --profile runs/cpu/profile.json --k 2 --out runs/cpu/placement.json "$@"
hellora train   recipes/cpu/sort-hellora.yaml "$@"
hellora train   recipes/cpu/sort-hellora.yaml selection.path=runs/cpu/placement.json output_dir=runs/cpu/placed "$@"
hellora train   recipes/cpu/sort-lora.yaml "$@"
hellora export  --adapter runs/cpu/sort-hellora/adapter --format peft   --out runs/cpu/peft "$@"
hellora export  --adapter runs/cpu/sort-hellora/adapter --format merged --out runs/cpu/merged "$@"
hellora eval    --task skill --model runs/cpu/merged --data hellora-demo/data/sort-test.jsonl --out runs/cpu/eval "$@"
hellora eval    --task skill --adapter runs/cpu/sort-hellora/adapter --data hellora-demo/data/sort-test.jsonl --out runs/cpu/eval-adapter "$@"
hellora eval    --task skill --model hellora-demo/base-model --data hellora-demo/data/sort-test.jsonl --out runs/cpu/eval-base "$@"
hellora report  runs/cpu/sort-hellora runs/cpu/sort-lora --out runs/cpu/report "$@"
