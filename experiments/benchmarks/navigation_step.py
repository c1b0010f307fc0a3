"""Training-step time of the path-integration model, against ``torch.nn.RNN`` in the same process.

One step = forward + cross-entropy (+ moduli penalty) + backward + AdamW. Prints the median time of
each variant (torch.utils.benchmark, after warm-up) and its ratio to the ``torch.nn.RNN`` baseline.

    python experiments/benchmarks/navigation_step.py --hidden 512 --batch 64 --steps 50
"""

from __future__ import annotations

import argparse

import torch
from torch.utils import benchmark

from moduli import DoG, ModuliRegularizer, Torus
from moduli.models import PathIntegrationRNN


class TorchBaseline(torch.nn.Module):
    """The same network with ``torch.nn.RNN`` as the recurrent core."""

    def __init__(self, place_cells: int, hidden: int) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(place_cells, hidden, bias=False)
        self.rnn = torch.nn.RNN(2, hidden, nonlinearity="relu", bias=False)
        self.decoder = torch.nn.Linear(hidden, place_cells, bias=False)

    def forward(self, velocity, start):
        states, _ = self.rnn(velocity, self.encoder(start).unsqueeze(0))
        return self.decoder(states)

    def penalty(self):
        return torch.zeros(())


def step_timer(model, penalty, device, batch: int, steps: int, place_cells: int) -> benchmark.Timer:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    velocity = torch.randn(steps, batch, 2, device=device) * 0.01
    start = torch.softmax(torch.randn(batch, place_cells, device=device), -1)
    target = torch.softmax(torch.randn(steps, batch, place_cells, device=device), -1)

    def step():
        logits = model(velocity, start)
        loss = -(target * torch.log_softmax(logits, -1)).sum(-1).mean() + penalty()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up (allocations, kernel selection)
    return benchmark.Timer(stmt="step()", globals={"step": step})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50, help="time steps per trajectory")
    parser.add_argument("--place-cells", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps; the median is reported")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    n, p = args.hidden, args.place_cells
    variants = {
        "torch.nn.RNN (baseline)": TorchBaseline(p, n),
        "moduli, no penalty": PathIntegrationRNN(p, n),
        "moduli, fixed torus DoG": PathIntegrationRNN(p, n, regularizer=lambda l, h: ModuliRegularizer(Torus(), h, DoG())),
        "moduli, learned torus DoG": PathIntegrationRNN(
            p, n, regularizer=lambda l, h: ModuliRegularizer(Torus(), h, DoG(), learn_embedding=True)),
    }
    print(f"device={device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} CPU threads'}), "
          f"hidden={n}, batch={args.batch}, T={args.steps}, place cells={p}, threads={torch.get_num_threads()}")
    baseline = None
    for name, model in variants.items():
        model.to(device)
        timer = step_timer(model, model.penalty, device, args.batch, args.steps, p)
        median = sorted(timer.timeit(1).median for _ in range(args.repeats))[args.repeats // 2]
        baseline = baseline or median
        print(f"{name:28s} {median * 1e3:9.1f} ms/step   ratio {median / baseline:5.2f}")


if __name__ == "__main__":
    main()
