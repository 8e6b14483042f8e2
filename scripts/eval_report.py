#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Completes docs/results/eval.json after kpc_llama wrote it (the text it read, the peer engine's
figures from docs/results/peer.json when they were measured on the same token ids) and plots
quality against bits per value."""
import argparse
import hashlib
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def evaluated_ids_sha256(tokens_path, count):
    with open(tokens_path, "rb") as f:
        return hashlib.sha256(f.read(4 * count)).hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--eval", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--text-info", required=True)
    parser.add_argument("--peer", required=True)
    parser.add_argument("--plot", required=True)
    args = parser.parse_args()

    with open(args.eval) as f:
        result = json.load(f)
    result["tokens_sha256"] = evaluated_ids_sha256(args.tokens, result["tokens"])
    with open(args.text_info) as f:
        info = json.load(f)
    result["text"] = {"package": info.get("package"), "file": os.path.basename(info["text"]),
                      "token_ids_sha256": info["sha256"]}
    result["peer"] = None
    if os.path.exists(args.peer):
        with open(args.peer) as f:
            peer = json.load(f)
        if peer.get("tokens_sha256") == result["tokens_sha256"] and peer.get("window") == result["window"]:
            result["peer"] = {key: peer[key] for key in ("engine", "f16_ppl", "q8_0_ppl", "q4_0_ppl")}
            f16 = next(r for r in result["rows"] if r["config"] == "f16" and not r["stress"])
            diff = 100.0 * (f16["ppl"] / peer["f16_ppl"] - 1.0)
            result["peer"]["f16_ppl_diff_pct"] = round(diff, 4)
            print(f"peer ({peer['engine']}): f16 {peer['f16_ppl']:.4f}, q8_0 {peer['q8_0_ppl']:.4f}, "
                  f"q4_0 {peer['q4_0_ppl']:.4f}; kpc_llama's f16 differs by {diff:+.3f} %")
        else:
            print(f"{args.peer} was measured on other tokens; run scripts/peer.sh with the same budget")
    with open(args.eval, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")

    plain = {(r["config"], key): r[key] for r in result["rows"] if not r["stress"] for key in ("kld", "dppl_pct")}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for stress, marker in ((False, "o"), (True, "x")):
        rows = [r for r in result["rows"] if r["stress"] == stress and r["config"] != "f16"]
        if not rows:
            continue
        label = "offset stress" if stress else "no stress"
        for ax, key in zip(axes, ("kld", "dppl_pct")):
            ax.scatter([r["bits_per_value"] for r in rows], [r[key] for r in rows], marker=marker, label=label)
            for r in rows:
                if stress and abs(r[key]) < 1.5 * abs(plain.get((r["config"], key), 0.0)):
                    continue  # close to its unstressed point, which carries the label
                ax.annotate(r["config"], (r["bits_per_value"], r[key]), fontsize=7, xytext=(4, 2),
                            textcoords="offset points")
    axes[0].set_yscale("log")
    axes[1].set_yscale("symlog", linthresh=0.1)  # perplexity changes can be negative
    for ax, title in zip(axes, ("mean KL divergence from the f16 cache", "perplexity change vs f16 cache, %")):
        ax.set_xlabel("bits per cached value (K and V)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"{result['model']}: KV cache formats, {result['tokens']} tokens in windows of {result['window']}"
                 " (lower is better)")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"wrote {args.eval} and {args.plot}")


if __name__ == "__main__":
    main()
