#!/usr/bin/env python3
"""Load every folder mamba-ts writes in HF transformers and compare logits with what mamba-ts computed.

The folders come from scripts/hf-interop.ts (`node dist/scripts/hf-interop.js OUT`, or `--make OUT` here, which runs
it with $NODE or `node`): for every HF fixture architecture a fine-tuned checkpoint (`train --from`, config.json kept
as the source wrote it) and a re-saved one (config.json written by mamba-ts's own serializer, stringifyConfigJson),
plus a Mamba trained from scratch. Each holds config.json + model.safetensors and mamba_ts_logits.safetensors
(input_ids, and the logits mamba-ts computes after loading the folder).

For each folder this script
  1. checks config.json's types against the transformers config class: a field whose default is a float
     (or a tuple of floats) must be written as a float (`0.0`, not `0`) -- transformers 5 refuses `[0, inf]`;
  2. loads it with AutoModelForCausalLM.from_pretrained(dtype=float32) on the CPU (the torch path, as the fixtures
     were made) and runs the same input ids;
  3. prints a table: folder, model_type, class, int-for-float fields, max |dlogit|, verdict.
Exit status 1 if any folder fails to load, has an int where a float belongs, or differs by more than 1e-4 -- except
folders named expect-fail-* (controls, e.g. a config.json written by plain JSON.stringify), which must fail.

Needs torch + transformers (the lent GPU machines have transformers 5.17); it does not run where mamba-ts is
developed (no torch there).

    python3 scripts/check-hf-load.py DIR [DIR ...]        folders written by hf-interop.ts
    python3 scripts/check-hf-load.py --make OUT            write them first (needs node and `npm run build`), then check OUT/*
"""
import json
import os
import subprocess
import sys

import torch
import transformers
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM

TOL = 1e-4


def _float_like(v) -> bool:
    return isinstance(v, float) or (isinstance(v, (list, tuple)) and len(v) > 0 and all(isinstance(x, float) for x in v))


def int_for_float(folder: str) -> list[str]:
    """config.json fields the config class defaults to a float (or floats) but the file writes as ints."""
    with open(os.path.join(folder, "config.json")) as f:
        raw = json.load(f)
    try:
        defaults = AutoConfig.for_model(raw["model_type"]).to_dict()
    except Exception:  # noqa: BLE001 - an unknown model_type shows up when loading
        return []
    bad = []
    for key, value in raw.items():
        want = defaults.get(key)
        if want is None or not _float_like(want):
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        # {"__float__": "Infinity"} decodes to a dict under plain json; it is a float to transformers
        if any(isinstance(x, int) and not isinstance(x, bool) for x in values):
            bad.append(f"{key}={json.dumps(value)}")
    return bad


def check(folder: str) -> dict:
    row = {"folder": os.path.basename(folder.rstrip("/")), "model_type": "?", "class": "-", "ints": "", "diff": "-", "ok": False, "note": ""}
    try:
        with open(os.path.join(folder, "config.json")) as f:
            row["model_type"] = json.load(f).get("model_type", "?")
    except Exception as e:  # noqa: BLE001
        row["note"] = f"config.json: {e}"
        return row
    bad = int_for_float(folder)
    row["ints"] = ", ".join(bad)
    ref = load_file(os.path.join(folder, "mamba_ts_logits.safetensors"))
    ids = ref["input_ids"].to(torch.long)
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    except Exception as e:  # noqa: BLE001 - any load failure is the finding
        row["note"] = f"does not load: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
        return row
    model.eval()
    row["class"] = type(model).__name__
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    d = (logits - ref["logits"]).abs().max().item()
    row["diff"] = f"{d:.2e}"
    row["ok"] = d <= TOL and not bad
    return row


def verdict(r: dict) -> tuple[bool, str]:
    control = r["folder"].startswith("expect-fail-")
    if control:
        return (not r["ok"], "fails, as expected" if not r["ok"] else "LOADS, but this control should fail")
    return (r["ok"], "ok" if r["ok"] else f"FAIL {r['note']}".strip())


def main(argv: list[str]) -> int:
    if argv[:1] == ["--make"]:
        if len(argv) != 2:
            print(__doc__)
            return 2
        out = argv[1]
        node = os.environ.get("NODE", "node")
        subprocess.run([node, "dist/scripts/hf-interop.js", out], check=True)
        argv = sorted(os.path.join(out, d) for d in os.listdir(out) if os.path.isfile(os.path.join(out, d, "mamba_ts_logits.safetensors")))
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    torch.manual_seed(0)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, float32 on the CPU, tolerance {TOL}\n")
    rows = [check(f) for f in argv]
    heads = ["folder", "model_type", "class", "max abs dlogit", "int where float", "result"]
    verdicts = [verdict(r) for r in rows]
    cells = [[r["folder"], r["model_type"], r["class"], r["diff"], r["ints"] or "-", v[1]] for r, v in zip(rows, verdicts)]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    line = lambda c: "| " + " | ".join(x.ljust(w) for x, w in zip(c, widths)) + " |"  # noqa: E731
    print(line(heads))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for c in cells:
        print(line(c))
    good = sum(v[0] for v in verdicts)
    print(f"\n{good}/{len(rows)} as expected: folders load in transformers {transformers.__version__} with float fields as floats and logits within {TOL}; controls fail")
    return 0 if good == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
