"""How much of jigsaw a colour match alone answers: no learning, just the pixels.

    python tools/experiments/jigsaw_colour_cue.py [--n 300] [--split val]

For each question, the median colour of the 6-px band around the missing quadrant's top and left edges is compared
with the median colour of each candidate's top and left 4-px bands; the closer candidate (L1 over RGB) is the
prediction. The layout constants are those of ``livr_viz.data.tasks._jigsaw`` at the demo's 96 px. Prints the
accuracy: when it is far above chance, the cue a reader needs is in the pixels, and a reader at chance is failing
to learn it, not missing information.
"""

import argparse

import numpy as np

from livr_viz.data.tasks import make_sample

SIZE = 96


def predict(image) -> int:
    a = np.asarray(image.convert("RGB"), np.float32)
    side = int(SIZE * 0.66) // 2 * 2
    half, top = side // 2, (SIZE - side) // 2
    band = np.concatenate(
        [
            a[top + half - 6 : top + half, 1 + half - 6 : 1 + side].reshape(-1, 3),
            a[top + half : top + side, 1 + half - 6 : 1 + half].reshape(-1, 3),
        ]
    )
    cx = side + 4
    cw = SIZE - cx - 2
    distances = []
    for k in range(2):
        y = 10 + k * (cw + 12)
        patch = a[y : y + cw, cx : cx + cw]
        edge = np.concatenate([patch[:4].reshape(-1, 3), patch[:, :4].reshape(-1, 3)])
        distances.append(np.abs(np.median(edge, 0) - np.median(band, 0)).sum())
    return int(np.argmin(distances))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--split", default="val")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    hits = 0
    for i in range(args.n):
        s = make_sample("jigsaw", args.split, args.seed, i, SIZE, answer_format="word")
        hits += predict(s.image) == s.letters.index(s.answer)
    print(f"jigsaw, {args.split} seed {args.seed}, {args.n} questions: colour match {100 * hits / args.n:.1f} %")


if __name__ == "__main__":
    main()
