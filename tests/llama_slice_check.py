# SPDX-License-Identifier: MIT
"""A short slice of the real-model evaluation: kpc_llama runs SmolLM2 with f16, q4_0 and kpc K4/V4
caches over two windows; the run must finish (kpc_llama refuses non-finite logits), give a finite
perplexity in a plausible range, and kpc's KL divergence from the f16 run must be below q4_0's.
A damaged model file (cut short) must be refused with a message, not crash."""
import json
import math
import subprocess
import sys
import tempfile

engine, model, tokens = sys.argv[1:4]
with tempfile.TemporaryDirectory() as tmp:
    out = f"{tmp}/slice.json"
    subprocess.run([engine, "--model", model, "--tokens", tokens, "--window", "256", "--max-tokens", "512",
                    "--configs", "f16,q4_0,kpc-k4v4", "--stress", "off", "--json", out], check=True)
    with open(out) as f:
        result = json.load(f)
    with open(model, "rb") as f, open(f"{tmp}/cut.gguf", "wb") as cut:
        cut.write(f.read(4 << 20))  # header and metadata intact, tensor data missing
    refused = subprocess.run([engine, "--model", f"{tmp}/cut.gguf", "--tokens", tokens, "--window", "256"],
                             capture_output=True, text=True)
    assert refused.returncode == 1 and "outside the file" in refused.stderr, refused

rows = {row["config"]: row for row in result["rows"]}
assert set(rows) == {"f16", "q4_0", "kpc-k4v4"}, rows
f16, q4_0, kpc = rows["f16"], rows["q4_0"], rows["kpc-k4v4"]
# SmolLM2-135M on English prose: a perplexity far from this range means a broken forward pass.
assert math.isfinite(f16["ppl"]) and 2.0 < f16["ppl"] < 100.0, f16
assert f16["kld"] == 0.0 and f16["top1"] == 100.0, f16
assert 0.0 < kpc["kld"] < q4_0["kld"], (kpc, q4_0)
print(f"f16 ppl {f16['ppl']:.3f}; KLD kpc-k4v4 {kpc['kld']:.5f} < q4_0 {q4_0['kld']:.5f}")
