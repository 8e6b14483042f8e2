#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Evaluates the same windows as kpc's real-model evaluation with llama.cpp, as the peer.

The first floor(min(count, max_tokens) / window) * window ids of --tokens are cut into
consecutive windows; each is evaluated from an empty KV cache without a BOS token, position i
predicting token i + 1; PPL = exp(mean NLL). llama.cpp runs with f16, q8_0, q4_0, q4_1, q5_0 and
iq4_nl KV caches, flash attention on (a quantized V cache needs it). From llama-cpp-python 0.3.36
its quantized caches are Walsh-Hadamard rotated (K, Q and V, head_dim % 64 == 0); q4_0 is also run
with LLAMA_ATTN_ROT_DISABLE=1, the format engines used before. The f16 run uses micro-batches of
32 queries (0.3.36's f16 path with 64 or more queries per batch differs slightly from earlier
versions'). Also re-tokenizes the text named by the tokens' .json with llama.cpp and counts the
ids that differ from ours.

Run through scripts/peer.sh, which builds llama-cpp-python. With --eval, compares the C++
engine's f16 PPL on the same ids (window 512) and exits non-zero when they differ by over 1 %.

usage: python3 scripts/peer.py --model GGUF --tokens FILE.u32 [--windows 512,2048] [--max-tokens 8192]
                               [--out docs/results/peer.json] [--eval docs/results/eval.json]
"""
import argparse
import datetime
import hashlib
import inspect
import json
import os
import sys
import time

import numpy as np
import llama_cpp
from llama_cpp import Llama

# (name, ggml_type, bits per value, rotated): the KV caches compared.
CACHES = [("f16", 1, 16.0, False), ("q8_0", 8, 8.5, True), ("q4_0", 2, 4.5, True), ("q4_1", 3, 5.0, True),
          ("q5_0", 6, 5.5, True), ("iq4_nl", 20, 4.5, True), ("q4_0", 2, 4.5, False)]
TOLERANCE = 0.01


def flash_attention_args():
    """llama-cpp-python took a bool flash_attn up to 0.3.16; later versions take an enum."""
    parameters = inspect.signature(Llama.__init__).parameters
    if "flash_attn_type" in parameters:
        return {"flash_attn_type": llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED}
    return {"flash_attn": True}


def window_nll(logits, ids):
    """Sum of -log p(ids[i + 1] | ids[..i]) over the window, log-softmax in f64."""
    x = logits[:len(ids) - 1].astype(np.float64)
    peak = x.max(axis=1)
    lse = peak + np.log(np.exp(x - peak[:, None]).sum(axis=1))
    return float((lse - x[np.arange(len(ids) - 1), ids[1:]]).sum())


def perplexity(model, ids, window, type_kv, rotated):
    """PPL over the windows; rotated=False disables llama.cpp's rotation of quantized caches."""
    if rotated:
        os.environ.pop("LLAMA_ATTN_ROT_DISABLE", None)
    else:
        os.environ["LLAMA_ATTN_ROT_DISABLE"] = "1"
    ubatch = 32 if type_kv == 1 else window
    llm = Llama(model_path=model, n_ctx=window, n_batch=window, n_ubatch=ubatch,
                logits_all=True, n_threads=2, n_threads_batch=2, type_k=type_kv,
                type_v=type_kv, verbose=False, **flash_attention_args())
    total, count = 0.0, 0
    for start in range(0, len(ids), window):
        chunk = ids[start:start + window]
        llm.reset()  # eval() then drops every cached position: an empty cache
        llm.eval(chunk.tolist())
        total += window_nll(np.asarray(llm.scores[:window]), chunk)
        count += window - 1
    llm.close()  # frees the context before the next cache type loads the model again
    os.environ.pop("LLAMA_ATTN_ROT_DISABLE", None)
    return float(np.exp(total / count))


def tokenizer_mismatches(model, text_path, ours):
    """Positions where llama.cpp's ids for the text differ from ours (a missing id counts)."""
    llm = Llama(model_path=model, vocab_only=True, verbose=False)
    with open(text_path, "rb") as f:
        theirs = np.asarray(llm.tokenize(f.read(), add_bos=False, special=False), dtype=np.int64)
    n = min(len(theirs), len(ours))
    differ = np.flatnonzero(theirs[:n] != ours[:n])
    if len(differ):
        at = int(differ[0])
        print(f"first difference at id {at}: ours {ours[at:at + 8].tolist()}, "
              f"llama.cpp {theirs[at:at + 8].tolist()}")
    return len(differ) + abs(len(theirs) - len(ours)), len(theirs)


def compare(eval_path, result):
    """Checks the C++ engine's f16 PPL against llama.cpp's; False when off by over 1 %."""
    if not os.path.exists(eval_path):
        print(f"{eval_path} not found: no comparison")
        return True
    with open(eval_path) as f:
        ours = json.load(f)
    if ours.get("tokens_sha256") != result["tokens_sha256"]:
        print(f"{eval_path} evaluated other ids: no comparison")
        return True
    window = str(ours.get("window"))
    rows = [r for r in ours.get("rows", []) if r.get("config") == "f16" and not r.get("stress")]
    if not rows or window not in result["windows"]:
        print(f"{eval_path} has no f16 row at a window measured here: no comparison")
        return True
    kpc, peer = rows[0]["ppl"], result["windows"][window]["f16_ppl"]
    diff = 100.0 * (kpc - peer) / peer
    print(f"f16 PPL, window {window}: kpc {kpc:.4f}, llama.cpp {peer:.4f}, difference {diff:+.3f} %")
    return abs(diff) <= 100.0 * TOLERANCE


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--windows", default="512,2048")
    parser.add_argument("--max-tokens", type=int, default=8192)
    parser.add_argument("--out", default="docs/results/peer.json")
    parser.add_argument("--eval")
    args = parser.parse_args()
    windows = [int(w) for w in args.windows.split(",")]

    tokens = np.fromfile(args.tokens, dtype="<u4").astype(np.int64)
    n = min(len(tokens), args.max_tokens)
    if n < max(windows):
        sys.exit(f"peer: fewer than {max(windows)} tokens in {args.tokens}")
    ids = tokens[:n // max(windows) * max(windows)]  # every window size scores the same ids
    n = len(ids)
    result = {"engine": f"llama.cpp via llama-cpp-python {llama_cpp.__version__}",
              "model": os.path.basename(args.model), "tokens": n,
              "tokens_sha256": hashlib.sha256(ids.astype("<u4").tobytes()).hexdigest(), "windows": {}}

    meta_path = os.path.splitext(args.tokens)[0] + ".json"
    meta = {}
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
    if meta.get("text") and os.path.exists(meta["text"]):
        mismatches, count = tokenizer_mismatches(args.model, meta["text"], tokens)
        result["tokenizer_agrees"] = mismatches == 0
        result["tokenizer_mismatches"] = mismatches
        print(f"tokenizer: {len(tokens)} ids ours, {count} llama.cpp, {mismatches} differ")

    for window in windows:
        print(f"{n} tokens in {n // window} windows of {window}, "
              f"llama-cpp-python {llama_cpp.__version__}, {flash_attention_args()}")
        print(f"{'cache':16} {'b/v':>5} {'PPL':>10} {'dPPL %':>8} {'seconds':>8}")
        rows, f16 = [], None
        for name, type_kv, bits, rotated in CACHES:
            start = time.perf_counter()
            ppl = perplexity(args.model, ids, window, type_kv, rotated)
            seconds = time.perf_counter() - start
            f16 = ppl if name == "f16" else f16
            label = name + ("" if name == "f16" else " rotated" if rotated else " unrotated")
            row = {"cache": name, "rotated": rotated, "bits_per_value": bits, "ppl": ppl,
                   "dppl_pct": 100.0 * (ppl / f16 - 1.0)}
            rows.append(row)
            print(f"{label:16} {bits:5.2f} {ppl:10.4f} {row['dppl_pct']:8.3f} {seconds:8.1f}", flush=True)
        result["windows"][str(window)] = {"f16_ppl": f16, "f16_n_ubatch": 32, "rows": rows}
    result["date"] = datetime.date.today().isoformat()

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}")
    if args.eval and not compare(args.eval, result):
        sys.exit(f"peer: kpc's f16 PPL is more than {100 * TOLERANCE:g} % from llama.cpp's")


if __name__ == "__main__":
    main()
