"""Train a tiny causal decoder in Flax (nnx) + optax on a tokenmill `clm` corpus, read through Grain.

    python examples/flax_clm.py --data out/ --steps 40

Each JAX process reads its own slice of every globally shuffled epoch
(`readers.grain.grain_dataset`). With `--state FILE` the Grain iterator's
state is written there at the end, and read back at the start if the file
exists: the next run continues with the batches this one had not reached
(save it beside the model's checkpoint). Prints `step N loss X` every 10 steps.
"""

from __future__ import annotations

import argparse
import json
import os

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from readers.grain import grain_dataset
from readers.manifest import Corpus


class Block(nnx.Module):
    def __init__(self, width: int, heads: int, rngs: nnx.Rngs):
        self.attention_norm = nnx.LayerNorm(width, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(heads, width, decode=False, rngs=rngs)
        self.mlp_norm = nnx.LayerNorm(width, rngs=rngs)
        self.up = nnx.Linear(width, 4 * width, rngs=rngs)
        self.down = nnx.Linear(4 * width, width, rngs=rngs)

    def __call__(self, x, mask):
        x = x + self.attention(self.attention_norm(x), mask=mask)
        return x + self.down(jax.nn.gelu(self.up(self.mlp_norm(x))))


class Decoder(nnx.Module):
    """Attention stays inside each packed document (segment ids) and looks only back (positions)."""

    def __init__(self, vocab_size: int, length: int, width: int = 64, layers: int = 2, heads: int = 4, *, rngs: nnx.Rngs):
        self.tokens = nnx.Embed(vocab_size, width, rngs=rngs)
        self.positions = nnx.Embed(length, width, rngs=rngs)
        self.blocks = nnx.List([Block(width, heads, rngs) for _ in range(layers)])
        self.norm = nnx.LayerNorm(width, rngs=rngs)
        self.out = nnx.Linear(width, vocab_size, rngs=rngs)

    def __call__(self, ids, segments, positions):
        causal = jnp.tril(jnp.ones((ids.shape[1], ids.shape[1]), bool))
        mask = (segments[:, :, None] == segments[:, None, :]) & causal[None]
        x = self.tokens(ids) + self.positions(positions)
        for block in self.blocks:
            x = block(x, mask[:, None])
        return self.out(self.norm(x))


def loss_fn(model: Decoder, batch):
    ids, segments = batch["input_ids"], batch["segment_ids"]
    logits = model(ids[:, :-1], segments[:, :-1], batch["positions"][:, :-1])
    weight = (segments[:, 1:] == segments[:, :-1]) & (segments[:, 1:] > 0)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, ids[:, 1:])
    return (losses * weight).sum() / jnp.maximum(weight.sum(), 1)


@nnx.jit
def train_step(model: Decoder, optimizer: nnx.Optimizer, batch):
    loss, grads = nnx.value_and_grad(loss_fn)(model, batch)
    optimizer.update(model, grads)
    return loss


def main(argv=None) -> list[float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a tokenmill output root or version directory (clm), with array_record or parquet shards")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16, help="per process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--state", help="a JSON file for the Grain iterator's state")
    args = parser.parse_args(argv)

    corpus = Corpus(args.data)
    length = corpus.schema.features[0].length
    model = Decoder(corpus.vocab_size, length - 1, rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)
    iterator = iter(grain_dataset(args.data, "train", batch_size=args.batch_size, seed=args.seed, num_epochs=None))
    if args.state and os.path.exists(args.state):
        with open(args.state) as f:
            iterator.set_state(json.load(f))
    losses = []
    for step in range(args.steps):
        losses.append(float(train_step(model, optimizer, next(iterator))))
        if step % 10 == 9:
            print(f"step {step + 1} loss {sum(losses[-10:]) / 10:.4f}")
    if args.state:
        with open(args.state, "w") as f:
            json.dump(iterator.get_state(), f)
    return losses


if __name__ == "__main__":
    main()
