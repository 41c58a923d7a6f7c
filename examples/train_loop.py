"""What the example trainers share: their options, joining a torchrun group, and a loop that prints the loss curve.

Under `torchrun` each process joins the group (gloo on CPU, nccl on GPU)
before it builds its dataset, so `TokenmillDataset` reads that rank's part.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
from torchdata.stateful_dataloader import StatefulDataLoader


def start(description: str, argv: list[str] | None) -> argparse.Namespace:
    """Parse the options, seed torch, and join the process group when started by torchrun."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("corpus", help="a tokenmill output directory or one of its versions (local, gs://, any fsspec URL)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=1, help="DataLoader workers per process")
    parser.add_argument("--log-every", type=int, default=10)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    if "RANK" in os.environ and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return args


def train(model: torch.nn.Module, dataset, loss_of, args: argparse.Namespace) -> list[float]:
    """AdamW for `args.steps` steps over as many epochs as it takes (`set_epoch` each); returns every step's loss."""
    if dist.is_initialized():
        model = torch.nn.parallel.DistributedDataParallel(model)
    loader = StatefulDataLoader(dataset, batch_size=args.batch_size, num_workers=args.num_workers, drop_last=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    model.train()
    losses: list[float] = []
    epoch = 0
    while len(losses) < args.steps:
        dataset.set_epoch(epoch)
        for batch in loader:
            loss = loss_of(model, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if (len(losses) % args.log_every == 0 or len(losses) == 1) and (not dist.is_initialized() or dist.get_rank() == 0):
                print(f"step {len(losses):5d}  epoch {epoch}  loss {losses[-1]:.4f}", flush=True)
            if len(losses) == args.steps:
                break
        epoch += 1
    return losses
