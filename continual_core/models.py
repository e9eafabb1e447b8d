"""The networks, built for the dataset's shape: `MODELS` is the one list of them (the
spec's `model` choices, each model's default dataset, smallest input side and evaluation
chunk come from it), so a new model is one builder and one entry here.

Every model outputs LOGITS (no softmax layer): train with
`sparse_categorical_crossentropy(..., from_logits=True)` and take `softmax(logits)` for
probabilities. Augmentation is NOT part of the model: `build_augmenter` returns a separate
layer stack that the training step applies (and only the training step — never evaluation
or the Fisher), so a saved model is the plain network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from continual_core.heads import output_width

# Keras on first use: the spec (read by the API, which never imports TensorFlow) takes the
# model names from `MODELS`.
from continual_core.lazy import keras

#: Hidden layer widths of the `mlp` when the spec names none (the original's).
DEFAULT_MLP_HIDDEN = (100, 100)

#: Per-channel mean and standard deviation of CIFAR-10 training images in [0, 1].
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def build_model(spec: Any) -> keras.Model:
    """`spec.model` for `spec.input_shape` with one output (logit) per class, or with
    `heads: multi` one per unit of every task's head (`continual_core.heads.output_width`).

    Weights are drawn from Keras' global seed: call `keras.utils.set_random_seed` first
    for a reproducible initialisation.
    """
    return MODELS[spec.model].build(spec.input_shape, output_width(spec), spec)


def eval_chunk(model: str) -> int:
    """Examples per compiled prediction call of `model` (bounds evaluation memory)."""
    return MODELS[model].eval_chunk


def _mlp(shape: tuple[int, int, int], classes: int, spec: Any) -> keras.Model:
    """flatten → Dense ReLU per width of `spec.hidden` (default 100, 100) → Dense classes
    (89,610 parameters on MNIST with the default widths)."""
    inp = keras.Input(shape)
    x = keras.layers.Flatten()(inp)
    for width in getattr(spec, "hidden", None) or DEFAULT_MLP_HIDDEN:
        x = keras.layers.Dense(width, activation="relu")(x)
    out = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inp, out, name="mlp")


def _lenet(shape: tuple[int, int, int], classes: int, spec: Any) -> keras.Model:
    """LeNet-5: conv 6@5×5 tanh (same) → avg-pool → conv 16@5×5 tanh → avg-pool →
    conv 120@5×5 tanh → Dense 84 tanh → Dense classes (61,706 parameters on MNIST)."""
    inp = keras.Input(shape)
    x = keras.layers.Conv2D(6, 5, padding="same", activation="tanh")(inp)
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Conv2D(16, 5, activation="tanh")(x)
    x = keras.layers.AveragePooling2D(2)(x)
    x = keras.layers.Conv2D(120, 5, activation="tanh")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(84, activation="tanh")(x)
    out = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inp, out, name="lenet")


def _cifarnet(shape: tuple[int, int, int], classes: int, spec: Any) -> keras.Model:
    """3×3 ReLU convs 64, 64, 128/2, 128, dropout .5, 128, 192/2, 192, dropout .5, 192, each
    followed by batch-norm → global average pool → Dense classes. On CIFAR a fixed
    per-channel normalisation comes first."""
    inp = keras.Input(shape)
    x = inp
    if spec.dataset in ("cifar10", "cifar100"):
        x = keras.layers.Normalization(
            mean=list(CIFAR_MEAN), variance=[s * s for s in CIFAR_STD], name="cifar_norm"
        )(x)
    plan: list[tuple[int, int] | str] = [
        (64, 1), (64, 1), (128, 2), (128, 1), "dropout",
        (128, 1), (192, 2), (192, 1), "dropout", (192, 1),
    ]
    for i, item in enumerate(plan):
        if item == "dropout":
            x = keras.layers.Dropout(0.5, seed=spec.seed + i)(x)
            continue
        filters, stride = item  # type: ignore[misc]
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", activation="relu")(x)
        x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(classes, name="logits")(x)
    return keras.Model(inp, out, name="cifarnet")


def build_augmenter(spec: Any) -> keras.Sequential | None:
    """Training-time augmentation (None when `spec.augment` is off): random translation by
    up to 10 % of each side, plus a random horizontal flip for 3-channel images."""
    if not spec.augment:
        return None
    stack: list[Any] = [
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=spec.seed)
    ]
    if spec.input_shape[2] == 3:
        stack.append(keras.layers.RandomFlip("horizontal", seed=spec.seed + 1))
    aug = keras.Sequential(stack, name="augment")
    aug.build((None, *spec.input_shape))
    return aug


@dataclass(frozen=True)
class ModelEntry:
    """One network: how to build it and what the spec and the evaluation need to know."""

    build: Callable[[tuple[int, int, int], int, Any], Any]  # (shape, classes, spec) → model
    default_dataset: str  # the dataset when the spec names none (the original's rule)
    eval_chunk: int  # examples per compiled prediction call (smaller for CNNs: memory)
    min_side: int = 1  # smallest input height/width it accepts
    hidden: tuple[int, ...] | None = None  # default hidden widths, if the spec may set them


#: Model name → entry; the order is the order of the spec's choices.
MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry(_mlp, default_dataset="mnist", eval_chunk=8192, hidden=DEFAULT_MLP_HIDDEN),
    "lenet": ModelEntry(_lenet, default_dataset="mnist", eval_chunk=2048, min_side=28),
    "cifarnet": ModelEntry(_cifarnet, default_dataset="cifar10", eval_chunk=512),
}
