#!/usr/bin/env python3
"""Load folders written by mamba-ts in HF transformers and compare logits with what mamba-ts computed.

Each folder holds a checkpoint (config.json + model.safetensors, as `mamba-ts train` writes it) and
mamba_ts_logits.safetensors (input_ids, logits) from scripts/hf-interop.ts. Runs on a machine with torch and
transformers (the lent GPU machines have transformers 5.17); the torch path in float32 on the CPU, as the
fixtures were made. Exit status 1 if any folder fails to load or differs by more than 1e-4.

    python3 scripts/hf-check.py DIR [DIR ...]
"""
import sys

import torch
import transformers
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

TOL = 1e-4


def check(folder: str) -> tuple[bool, str]:
    ref = load_file(f"{folder}/mamba_ts_logits.safetensors")
    ids = ref["input_ids"].to(torch.long)
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    except Exception as e:  # noqa: BLE001 - any load failure is the finding
        return False, f"does not load: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    d = (logits - ref["logits"]).abs().max().item()
    return d <= TOL, f"{type(model).__name__}: max |dlogit| = {d:.2e}"


def main() -> int:
    torch.manual_seed(0)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    bad = 0
    for folder in sys.argv[1:]:
        ok, msg = check(folder)
        bad += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {folder}: {msg}", flush=True)
    print(f"{len(sys.argv) - 1 - bad}/{len(sys.argv) - 1} folders load in transformers with logits within {TOL}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
