"""The constants behind the research code's controls, at the paper's layer sizes.

For N random neurons on the flat 2-torus of side 10 (``Torus().random``, seeds 0 .. ``--draws`` - 1)
prints one Markdown table with, per N:

- the mean-matched L1 constant of each rule (``regularizer.mean_matched``): the mean over the
  N x N entries of the plain (non-inverted) DoG (``plain_dog``, the research code's
  ``--regpower mean``) and of the inverted DoG the torus penalty applies (``applied``); mean and
  standard deviation over the draws, beside the closed-form expectation of ``plain_dog``
  (``DoG.plain_torus_mean``);
- the maximum of the plain DoG over the matrix (what the research code's ``--invert`` subtracts
  from) against the analytic peak our inverted DoG uses (``DoG.peak_value``);
- the maximum of d^2 over the matrix, the constant of the inverted diffusion ``max d^2 - d^2``.

Usage (about a minute on one CPU thread): ``python experiments/protocol_constants.py [--draws 20]``.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from moduli.inhibitors import DoG
from moduli.manifolds import Torus

SIZES = (128, 650, 1024, 4096)  # adding, language, the mean-matched example of the protocol, navigation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20, help="random embeddings per size (default 20)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dog, torus = DoG(), Torus()
    print(f"analytic peak of the plain DoG: {dog.peak_value:.4f} at d = {dog.peak_distance:.4f}\n")
    header = ["N", "plain_dog mean (sd)", "expected", "applied mean (sd)", "max plain DoG: min .. max",
              "max d^2: min .. max"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---:|" * len(header))
    for n in SIZES:
        plain, applied, peaks, far = [], [], [], []
        for seed in range(args.draws):
            points = torus.random(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
            d = torus.pairwise_distance(points)
            values = dog.plain(d)
            plain.append(float(values.mean()))
            applied.append(float(dog(d).mean()))
            peaks.append(float(values.max()))
            far.append(float((d * d).max()))
        print(
            f"| {n} | {statistics.mean(plain):.3f} ({statistics.stdev(plain):.3f}) | {dog.plain_torus_mean(n):.3f} "
            f"| {statistics.mean(applied):.3f} ({statistics.stdev(applied):.3f}) "
            f"| {min(peaks):.3f} .. {max(peaks):.3f} | {min(far):.2f} .. {max(far):.2f} |"
        )


if __name__ == "__main__":
    main()
