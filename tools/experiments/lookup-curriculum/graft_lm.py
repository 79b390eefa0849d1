"""Experiment helper: a backbone with VISION's tower and projector and LANGUAGE's language model (same
architecture and tokenizer), e.g. the shipped tower under a language model that has an induction head:

    python tools/experiments/lookup-curriculum/graft_lm.py --vision assets/demo-base --language RUN/induct/model \
        --out RUN/graft
"""

import argparse
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vision", required=True)
    ap.add_argument("--language", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    vis, lang = (load_file(str(Path(d) / "model.safetensors")) for d in (a.vision, a.language))
    if vis.keys() != lang.keys() or any(vis[k].shape != lang[k].shape for k in vis):
        raise SystemExit("the two backbones differ in architecture")
    merged = {k: (lang[k] if k.startswith("language_model.") else vis[k]) for k in vis}
    out = Path(a.out)
    shutil.copytree(a.vision, out, dirs_exist_ok=True)
    save_file(merged, str(out / "model.safetensors"), metadata={"format": "pt"})
    print(
        f"{sum(k.startswith('language_model.') for k in merged)} language-model tensors from {a.language}, "
        f"{sum(not k.startswith('language_model.') for k in merged)} from {a.vision} -> {out}"
    )


if __name__ == "__main__":
    main()
