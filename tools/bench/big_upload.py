"""A 6000 x 6000 JPEG upload through the app's server-side path, beside the 96 px example, in one process.

    python -m tools.bench.big_upload [--side 6000] [--model demo-livr]

Times what the app does for *Run* (decode + downscale, forward with capture, 16 overlays, answer bars) and the
Compare tab's extra work (two more models, montage), and reports the process's peak resident memory. The issue's
goal: answered in <= 10 s on 2 cores with the process under 1.5 GB.
"""

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from livr_viz import service as S
from livr_viz.data import make_sample


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_view(model: str, path: str, prompt: str) -> float:
    t0 = time.perf_counter()
    a = S.analysis_for(model, path, prompt, "full")
    S.heatmap_tiles(a)
    a.answer_latent_attention()
    S.display_image(a.image, 256)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=6000)
    ap.add_argument("--model", default="demo-livr")
    a = ap.parse_args(argv)
    sample = make_sample("counting", "test", 0, 0)
    tmp = Path(tempfile.mkdtemp())
    small = tmp / f"{sample.id}.png"
    sample.image.save(small)
    big = tmp / "big.jpg"  # photo-like content (gradients + noise), drawn in another process so that its
    # memory does not count in this one's peak
    draw = (
        "import sys; from PIL import Image; n = int(sys.argv[1]); "
        "g = Image.linear_gradient('L').resize((n, n)); "
        "Image.merge('RGB', (g, g.rotate(90), Image.effect_noise((n, n), 40))).save(sys.argv[2], quality=85)"
    )
    subprocess.run([sys.executable, "-c", draw, str(a.side), str(big)], check=True)
    S.POOL.get(a.model)
    base_rss = peak_rss_mb()
    out = {"side": a.side, "jpeg_mb": big.stat().st_size / 2**20, "rss_after_load_mb": base_rss}
    out["small_s"] = run_view(a.model, str(small), sample.prompt)
    out["big_s"] = run_view(a.model, str(big), sample.prompt)
    t0 = time.perf_counter()
    for m in S.compare_set(a.model):
        if m != a.model:
            run_view(m, str(big), sample.prompt)
    out["big_compare_extra_s"] = time.perf_counter() - t0
    out["peak_rss_mb"] = peak_rss_mb()
    print(
        f"| {a.side}x{a.side} JPEG ({out['jpeg_mb']:.1f} MB) | Run {out['big_s']:.2f} s (96 px example "
        f"{out['small_s']:.2f} s) | Compare's two other models +{out['big_compare_extra_s']:.2f} s | peak RSS "
        f"{out['peak_rss_mb']:.0f} MB (after loading the model {base_rss:.0f} MB) |"
    )
    return out


if __name__ == "__main__":
    main()
