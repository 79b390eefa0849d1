"""Benchmarks: every figure is a ratio (or rate) measured side by side in one run, medians over repeats.

``python -m tools.bench [--quick] --json OUT [--plot PNG]`` (from the root of a clone).  Results and the machine go
into BENCHMARKS.md.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from livr_viz.core.capture import LatentAttention, install_capture
from livr_viz.core.model import LIVRModel


def _median_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _paired(fn_a, fn_b, repeats: int) -> tuple[float, float]:
    """Alternate A and B so drift (thermal, other load) hits both alike; medians of each."""
    fn_a(), fn_b()
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn_a()
        ta.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fn_b()
        tb.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def mid_llava(n_latents: int, max_positions: int = 8192):
    """A mid-size random LLaVA: Llama 512 d x 8 layers x 8 heads, CLIP 64 px (64 image tokens)."""
    from livr_viz.demo.tiny import tiny_llava

    sizes = dict(image_size=64, patch_size=8, text_hidden=512, text_layers=8, heads=8, kv_heads=8)
    model, processor = tiny_llava(seed=0, max_positions=max_positions, **sizes)
    return LIVRModel.from_backbone(
        "mid-llava", model=model, processor=processor, n_latents=n_latents, variant="livr" if n_latents else "sft"
    )


def _batch_of_length(lm, T: int):
    """One input whose total length is about T tokens (the prompt is padded with words)."""
    from PIL import Image

    size = lm.base_model.config.vision_config.image_size
    image = Image.new("RGB", (size, size), (120, 40, 200))
    base = lm.build_inputs([image], ["x"]).input_ids.shape[1]
    per_word = (lm.build_inputs([image], ["count " * 50]).input_ids.shape[1] - base) / 50
    words = max(0, int(round((T - base) / per_word)))
    return lm.build_inputs([image], ["count " * words])


def bench_capture(lm, T: int, repeats: int) -> dict:
    batch = _batch_of_length(lm, T)
    install_capture(lm.base_model, "sdpa")
    capture = LatentAttention(lm, hidden_states=False)
    with torch.no_grad():
        t_plain, t_capture = _paired(lambda: lm.hidden_states(batch, "full"), lambda: capture.run(batch), repeats)
        result = capture.run(batch)
    captured_bytes = result.attention.numel() * result.attention.element_size()
    # reference: eager + output_attentions, which materialises [B, H, T, T] per layer
    impl = {k: ("eager" if k == "text_config" else "sdpa") for k in list(lm.base_model.config.sub_configs) + [""]}
    lm.base_model.set_attn_implementation(impl)
    try:
        with torch.no_grad():
            out = lm.hidden_states(batch, "full", output_attentions=True)
            full_bytes = sum(a.numel() * a.element_size() for a in out.attentions)
            del out
            gc.collect()
            t_eager = _median_time(lambda: lm.hidden_states(batch, "full", output_attentions=True), repeats)
    finally:
        install_capture(lm.base_model, "sdpa")
    real_T = batch.input_ids.shape[1]
    rows = result.attention.shape[3]
    return {
        "T": real_T,
        "rows": rows,
        "plain_s": t_plain,
        "capture_s": t_capture,
        "capture_over_plain": t_capture / t_plain,
        "output_attentions_s": t_eager,
        "speedup_vs_output_attentions": t_eager / t_capture,
        "captured_bytes": captured_bytes,
        "output_attentions_bytes": full_bytes,
        "bytes_ratio": captured_bytes / full_bytes,
        "bytes_goal_2K_over_T": 2 * rows / real_T,
    }


def bench_latent_overhead(T: int, repeats: int) -> dict:
    with_latents, without = mid_llava(16), mid_llava(0)
    b1, b0 = _batch_of_length(with_latents, T), _batch_of_length(without, T)
    with torch.no_grad():
        t1, t0 = _paired(lambda: with_latents.answer_logits(b1), lambda: without.answer_logits(b0), repeats)
    return {
        "T_without": b0.input_ids.shape[1],
        "T_with": b1.input_ids.shape[1],
        "with_latents_s": t1,
        "without_s": t0,
        "ratio": t1 / t0,
    }


def bench_trainer_step(repeats: int) -> dict:
    """Our Trainer.train_step vs a minimal loop (HF forward with labels, backward, clip, AdamW) on one batch."""
    from livr_viz.data import make_sample, task_names
    from livr_viz.training.trainer import TrainConfig, Trainer, build_model_for_training

    cfg = TrainConfig(variant="livr", steps=10, batch_size=16, lr=1e-4)
    lm = build_model_for_training("demo-base", cfg)
    items = [make_sample(task_names()[i % 9], "train", 0, i) for i in range(16)]
    batch = lm.build_inputs([s.image for s in items], [s.prompt for s in items], [s.target for s in items])
    trainer = Trainer(lm, cfg, Path(os.environ.get("TMPDIR", "/tmp")) / "livr-bench-trainer", progress=False)
    lm.model.train()
    params = [p for p in lm.model.parameters() if p.requires_grad]
    hand_opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    hand_inputs = {**batch.inputs, "attention_mask": batch.padding_mask, "labels": batch.labels}

    def hand():
        loss = lm.model(**hand_inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        hand_opt.step()
        hand_opt.zero_grad(set_to_none=True)

    ours, theirs = _paired(lambda: trainer.train_step([batch], "bottleneck"), hand, repeats)
    tokens = int(batch.padding_mask.sum())
    return {
        "trainer_step_s": ours,
        "hand_loop_s": theirs,
        "ratio": ours / theirs,
        "tokens_per_s_trainer": tokens / ours,
        "tokens_per_s_hand": tokens / theirs,
        "batch": 16,
        "tokens_per_batch": tokens,
    }


def bench_projections(sizes: list[int], repeats: int = 1) -> list[dict]:
    from sklearn.manifold import TSNE

    from livr_viz.methods.tokenmap import warm_up_umap

    rng = np.random.default_rng(0)
    out = []
    t0 = time.perf_counter()
    warm_up_umap()
    umap_warmup = time.perf_counter() - t0
    for n in sizes:
        centres = rng.normal(size=(8, 192)) * 4
        x = (centres[rng.integers(0, 8, n)] + rng.normal(size=(n, 192))).astype(np.float32)
        from sklearn.decomposition import PCA

        x50 = PCA(50, random_state=0).fit_transform(x)
        row = {"n": n}
        row["sklearn_tsne_s"] = _median_time(
            lambda x50=x50: TSNE(2, init="pca", random_state=0, max_iter=500).fit_transform(x50), repeats, warmup=0
        )
        try:
            from openTSNE import TSNE as OpenTSNE

            row["opentsne_s"] = _median_time(
                lambda x50=x50: OpenTSNE(n_jobs=2, random_state=0, n_iter=500).fit(x50), repeats, warmup=0
            )
        except ImportError:
            row["opentsne_s"] = None
        import umap

        row["umap_warm_s"] = _median_time(
            lambda x50=x50: umap.UMAP(random_state=0, n_jobs=1).fit_transform(x50), repeats, warmup=0
        )
        out.append(row)
    return [{"umap_first_call_warmup_s": umap_warmup}] + out


def bench_app_refresh(n: int) -> dict:
    """Server-side full refresh after an upload: forward with capture + the default views (cache misses)."""
    import tempfile

    from livr_viz import service as S
    from livr_viz.data import make_sample, task_names

    S.POOL.get("demo-livr")
    times = []
    tmp = Path(tempfile.mkdtemp())
    for i in range(n + 2):
        s = make_sample(task_names()[i % 9], "test", 31337, i)
        path = tmp / f"x{i}.png"
        s.image.save(path)
        t0 = time.perf_counter()
        a = S.analysis_for("demo-livr", str(path), s.prompt, "full")
        S.heatmap_tiles(a)
        a.answer_latent_attention()
        times.append(time.perf_counter() - t0)
    times = times[2:]  # warm-up
    return {"n": n, "p50_s": float(np.percentile(times, 50)), "p95_s": float(np.percentile(times, 95))}


def bench_data(n: int) -> dict:
    from livr_viz.data import make_sample, task_names

    out = {}
    for task in task_names():
        t0 = time.perf_counter()
        for i in range(n):
            make_sample(task, "train", 0, i)
        out[task] = n / (time.perf_counter() - t0)
    return out


def run_benchmarks(quick: bool = False, log=print) -> dict:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    repeats = 3 if quick else 7
    results: dict = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "quick": quick,
    }
    from livr_viz.core.model import load_model

    log("data generation …")
    results["data_samples_per_s"] = bench_data(100 if quick else 500)
    log("capture on the demo model …")
    demo = load_model("demo-livr")
    results["capture_demo"] = [bench_capture(demo, T, repeats) for T in ([160] if quick else [160, 512])]
    log("capture on a mid-size random LLaVA …")
    grid = []
    Ts = [256, 1024] if quick else [256, 1024, 4096]
    Ks = [16] if quick else [4, 16, 64]
    for K in Ks:
        lm = mid_llava(K)
        for T in Ts:
            if T >= 4096 and K != 16:  # eager output_attentions stores ~4 GiB per forward here: one K is enough
                continue
            grid.append({"K": K, **bench_capture(lm, T, 2 if T >= 4096 else repeats)})
            log(
                f"  K={K} T={T}: capture/plain {grid[-1]['capture_over_plain']:.3f}, "
                f"speed-up {grid[-1]['speedup_vs_output_attentions']:.2f}x, bytes {grid[-1]['bytes_ratio']:.4f}"
            )
        del lm
        gc.collect()
    results["capture_mid_llava"] = grid
    log("latent overhead …")
    results["latent_overhead_T1024"] = bench_latent_overhead(1024, repeats)
    log("trainer step …")
    results["trainer_step"] = bench_trainer_step(repeats + 2)
    log("projections …")
    results["projections"] = bench_projections([1000] if quick else [1000, 5000, 20000])
    log("app refresh …")
    results["app_refresh"] = bench_app_refresh(10 if quick else 30)
    return results


def plot_capture(results: dict, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = results["capture_mid_llava"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for K in sorted({g["K"] for g in grid}):
        rows = [g for g in grid if g["K"] == K]
        Ts = [g["T"] for g in rows]
        a1.plot(Ts, [g["captured_bytes"] / 2**20 for g in rows], "o-", label=f"capture K={K}")
        a2.plot(Ts, [g["capture_s"] for g in rows], "o-", label=f"capture K={K}")
    rows = [g for g in grid if g["K"] == grid[0]["K"]]
    a1.plot(
        [g["T"] for g in rows], [g["output_attentions_bytes"] / 2**20 for g in rows], "s--k", label="output_attentions"
    )
    a2.plot([g["T"] for g in rows], [g["output_attentions_s"] for g in rows], "s--k", label="output_attentions (eager)")
    a2.plot([g["T"] for g in rows], [g["plain_s"] for g in rows], "^:", color="gray", label="plain sdpa forward")
    for ax, label in ((a1, "stored attention (MiB)"), (a2, "forward time (s)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle("latent-row capture vs output_attentions (mid-size random LLaVA)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def main(quick: bool, json_out: str | None, plot: str | None, markdown: str | None = None) -> dict:
    results = run_benchmarks(quick)
    if json_out:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(results, indent=2))
    if plot:
        plot_capture(results, plot)
    if markdown:
        write_markdown(results, markdown, plot)
    return results


def _goal(ok: bool) -> str:
    return "met" if ok else "**missed**"


def write_markdown(results: dict, path: str | Path, plot: str | None = None) -> Path:
    """BENCHMARKS.md from a results dict: every row a measured figure, every goal stated as met / missed."""
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `python -m tools.bench{' --quick' if results['quick'] else ''}` on {m['platform']}, "
        f"{m['cpus']} CPU cores, torch {m['torch']} ({m['torch_threads']} threads), Python {m['python']}. "
        "Ratios are medians of paired, alternating repeats in one run; absolute times are for this machine only.",
        "",
        "## Capture of latent rows vs a plain forward and vs `output_attentions`",
        "",
        "| model | K | T | capture / plain sdpa (goal ≤ 1.10) | speed-up vs eager output_attentions (goal ≥ 2×) "
        "| bytes stored vs output_attentions | goal ≤ 2K/T |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = [("demo", r.get("rows"), r) for r in results["capture_demo"]]
    rows += [("mid LLaVA (512 d × 8 L × 8 H)", r["K"], r) for r in results["capture_mid_llava"]]
    for name, k, r in rows:
        bytes_ok = r["bytes_ratio"] <= r["bytes_goal_2K_over_T"] or r["T"] < 1024
        speed_ok = r["speedup_vs_output_attentions"] >= 2 or r["T"] < 1024
        lines.append(
            f"| {name} | {k} | {r['T']} | {r['capture_over_plain']:.3f} "
            f"({_goal(r['capture_over_plain'] <= 1.10)}) | {r['speedup_vs_output_attentions']:.2f}× "
            f"({_goal(speed_ok)}{'' if r['T'] >= 1024 else ', goal applies at T ≥ 1024'}) | "
            f"{r['bytes_ratio']:.5f} ({r['captured_bytes'] / 2**20:.2f} vs "
            f"{r['output_attentions_bytes'] / 2**20:.1f} MiB) | {r['bytes_goal_2K_over_T']:.5f} "
            f"({_goal(bytes_ok)}) |"
        )
    if plot:
        lines += ["", f"![capture vs T]({plot})"]
    lo = results["latent_overhead_T1024"]
    tr = results["trainer_step"]
    lines += [
        "",
        "## Other ratios",
        "",
        "| measurement | value | goal |",
        "|---|---|---|",
        f"| inference with K = 16 latents vs none, T ≈ {lo['T_without']} (mid LLaVA) | {lo['ratio']:.3f} | "
        f"≤ 1.05: {_goal(lo['ratio'] <= 1.05)} |",
        f"| trainer step (mask + answer-only loss + clip + AdamW) vs minimal hand loop, same batch "
        f"(demo, batch {tr['batch']}, {tr['tokens_per_batch']} tokens) | {tr['ratio']:.3f} | ≤ 1.10: "
        f"{_goal(tr['ratio'] <= 1.10)} |",
        f"| trainer throughput | {tr['tokens_per_s_trainer']:.0f} tokens/s | — |",
    ]
    app = results["app_refresh"]
    lines += [
        f"| app full refresh after an upload (server side: forward with capture + default views), "
        f"n = {app['n']} | p50 {app['p50_s']:.3f} s, p95 {app['p95_s']:.3f} s | p50 ≤ 1 s: "
        f"{_goal(app['p50_s'] <= 1.0)} |",
        "",
        "## Projections (2-D, 192-d clustered points, PCA to 50 first)",
        "",
        "| points | sklearn t-SNE (s) | openTSNE (s) | UMAP warm (s) |",
        "|---|---|---|---|",
    ]
    proj = results["projections"]
    for r in proj[1:]:
        lines.append(
            f"| {r['n']:,} | {r['sklearn_tsne_s']:.1f} | {r['opentsne_s']:.1f} | {r['umap_warm_s']:.1f} |"
            if r["opentsne_s"] is not None
            else f"| {r['n']:,} | {r['sklearn_tsne_s']:.1f} | — | {r['umap_warm_s']:.1f} |"
        )
    lines += [
        "",
        f"UMAP's first call in a process (numba compilation) took "
        f"{proj[0]['umap_first_call_warmup_s']:.1f} s; "
        "the app warms it up in a background thread at start.",
        "",
        "## Data generation (one process, default size 96 px; goal ≥ 300 samples/s per task)",
        "",
        "| task | samples/s |",
        "|---|---|",
    ]
    for task, rate in results["data_samples_per_s"].items():
        lines.append(f"| {task} | {rate:.0f} ({_goal(rate >= 300)}) |")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)
