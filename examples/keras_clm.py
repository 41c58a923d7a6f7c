"""Train a tiny causal decoder with Keras `model.fit` on a tokenmill `clm` corpus, read host-sharded by `tf_dataset`.

    python examples/keras_clm.py --data out/ --epochs 4 --steps-per-epoch 10

The dataset comes through `strategy.distribute_datasets_from_function`, so
on a TPU pod slice (`TPUStrategy`) each host reads its own part of the
split; here the default strategy runs it on one device. Prints one line per
epoch: `epoch N loss X`.
"""

from __future__ import annotations

import argparse

import keras
import tensorflow as tf

from readers.manifest import Corpus
from readers.tf_data import tf_dataset


def next_token_pairs(batch):
    """Inputs, next-token targets and a weight that is 1 where the target continues the same document."""
    ids, segments = batch["input_ids"], batch["segment_ids"]
    same_document = tf.logical_and(segments[:, 1:] == segments[:, :-1], segments[:, 1:] > 0)
    return ids[:, :-1], ids[:, 1:], tf.cast(same_document, tf.float32)


def decoder(vocab_size: int, length: int, width: int = 64, layers: int = 2, heads: int = 4) -> keras.Model:
    ids = keras.Input((length,), dtype="int64")
    x = keras.layers.Embedding(vocab_size, width)(ids)
    x = x + keras.layers.Embedding(length, width)(keras.ops.arange(length))[None]
    for _ in range(layers):
        h = keras.layers.LayerNormalization()(x)
        x = x + keras.layers.MultiHeadAttention(heads, width // heads)(h, h, use_causal_mask=True)
        h = keras.layers.LayerNormalization()(x)
        x = x + keras.layers.Dense(width)(keras.layers.Dense(4 * width, activation="gelu")(h))
    logits = keras.layers.Dense(vocab_size)(keras.layers.LayerNormalization()(x))
    return keras.Model(ids, logits)


def main(argv=None) -> list[float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a tokenmill output root or version directory (clm)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps-per-epoch", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16, help="global batch size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    corpus = Corpus(args.data)
    length = corpus.schema.features[0].length
    strategy = tf.distribute.get_strategy()

    def host_input(ctx: tf.distribute.InputContext):
        ds = tf_dataset(
            args.data, "train", input_context=ctx, shuffle=True, seed=args.seed, num_epochs=1000, shuffle_buffer=256,
            batch_size=ctx.get_per_replica_batch_size(args.batch_size),
        )  # fmt: skip
        return ds.map(next_token_pairs)

    with strategy.scope():
        model = decoder(corpus.vocab_size, length - 1)
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(strategy.distribute_datasets_from_function(host_input), epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, shuffle=False, verbose=0)
    losses = history.history["loss"]
    for epoch, loss in enumerate(losses):
        print(f"epoch {epoch} loss {loss:.4f}")
    return losses


if __name__ == "__main__":
    main()
