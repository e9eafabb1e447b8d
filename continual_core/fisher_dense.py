"""Per-example gradient sums of a dense network from one ordinary backward pass.

For a Dense layer z = a W + b, example n's gradient is ∂ℓ_n/∂W = a_nᵀ g_n and ∂ℓ_n/∂b = g_n,
with a_n the layer's input row and g_n = ∂ℓ_n/∂z_n its pre-activation gradient. Examples
are independent in inference mode, so the rows of G = ∂(Σ_n ℓ_n)/∂Z are the g_n, and for any
elementwise φ with φ(uv) = φ(u)φ(v) (the square for the Fisher, |·| for MAS):

    Σ_n φ(∂ℓ_n/∂W) = φ(A)ᵀ φ(G),      Σ_n φ(∂ℓ_n/∂b) = Σ_n φ(g_n).

That is one forward and one backward pass and a matmul per layer, instead of a vectorised
per-example gradient (`tf.vectorized_map`), whose trace costs seconds on a cold process.

`DenseChain.of(model)` applies when the model is a chain of Dense layers (on rank-2
inputs) and layers without weights that act on each example alone (`PER_EXAMPLE`), and the
Dense kernels and biases are all of its trainable variables; otherwise it is None and the
caller keeps its vectorised path (convolutions, batch-norm, anything else).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# TensorFlow on first use: MAS (`continual_core.methods.mas`) builds a chain too, and method
# modules are imported by the API, which never imports TensorFlow.
from continual_core.lazy import keras, tf

#: Layers without weights that map each example on its own in inference mode.
PER_EXAMPLE = ("Flatten", "Reshape", "Activation", "ReLU", "Dropout", "Identity")


class DenseChain:
    """The layers of a chain model, in order (without its input layer)."""

    def __init__(self, layers: list[Any]):
        self.layers = layers

    @classmethod
    def of(cls, model: Any, variables: list[Any]) -> DenseChain | None:
        """The chain of `model` if the analytic sums apply to `variables` (its trainable
        variables), else None."""
        try:
            layers = _chain(model)
        except (AttributeError, IndexError, TypeError):  # not a functional model as expected
            return None
        if layers is None:
            return None
        covered = set()
        for layer in layers:
            if isinstance(layer, keras.layers.Dense) and layer.trainable:
                covered.update(id(v) for v in layer.trainable_variables)
        if covered != {id(v) for v in variables} or len(covered) != len(variables):
            return None
        return cls(layers)

    def forward(
        self, x: tf.Tensor, tape: tf.GradientTape
    ) -> tuple[tf.Tensor, list[tuple[Any, tf.Tensor, tf.Tensor]]]:
        """The model's output on `x` (inference mode) and, per Dense layer, (layer, its input,
        its pre-activation output), each of those watched by `tape` as it is computed."""
        records = []
        h = x
        for layer in self.layers:
            if isinstance(layer, keras.layers.Dense):
                z = tf.matmul(h, layer.kernel)
                if layer.use_bias:
                    z = z + layer.bias
                tape.watch(z)
                records.append((layer, h, z))
                h = layer.activation(z) if layer.activation is not None else z
            else:
                h = layer(h, training=False)
        return h, records

    def gradient_sums(
        self,
        x: tf.Tensor,
        loss: Callable[[tf.Tensor], tf.Tensor],
        phi: Callable[[tf.Tensor], tf.Tensor],
        variables: list[Any],
    ) -> list[tf.Tensor]:
        """Σ_n φ(∂ℓ_n/∂θ) for each of `variables`, where `loss(outputs)` gives ℓ_n (shape
        (N,)) and φ is multiplicative (tf.square, tf.abs)."""
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            out, records = self.forward(x, tape)
            total = tf.reduce_sum(loss(out))
        grads = tape.gradient(total, [z for _, _, z in records])
        sums: dict[int, tf.Tensor] = {}
        for (layer, a, _), g in zip(records, grads):
            pg = phi(g)
            sums[id(layer.kernel)] = tf.matmul(phi(a), pg, transpose_a=True)
            if layer.use_bias:
                sums[id(layer.bias)] = tf.reduce_sum(pg, axis=0)
        return [sums[id(v)] for v in variables]


def _chain(model: Any) -> list[Any] | None:
    """The layers of `model` after its input layer if each takes the previous one's output
    and nothing else, ends in the model's output, and is a plain Dense on rank-2 inputs or
    in `PER_EXAMPLE`; None otherwise."""
    if not isinstance(model, keras.Model) or len(model.inputs) != 1 or len(model.outputs) != 1:
        return None
    layers = list(model.layers)
    if not layers or not isinstance(layers[0], keras.layers.InputLayer):
        return None
    previous = layers[0]
    for layer in layers[1:]:
        nodes = layer._inbound_nodes
        kwargs = set(nodes[0].arguments.kwargs) if len(nodes) == 1 else {"?"}
        if kwargs - {"training"} or len(nodes[0].input_tensors) != 1:  # run in inference mode
            return None
        source = nodes[0].input_tensors[0]
        if source._keras_history.operation is not previous or not _supported(layer, source):
            return None
        previous = layer
    if model.outputs[0]._keras_history.operation is not previous:
        return None
    return layers[1:]


def _supported(layer: Any, source: Any) -> bool:
    if type(layer) is keras.layers.Dense:
        return (
            not layer.lora_enabled
            and layer.quantization_mode is None
            and len(source.shape) == 2
            and layer.compute_dtype == "float32"
            and len(layer.kernel.shape) == 2
        )
    if type(layer) is keras.layers.Dropout:  # the identity in inference mode; its only
        return not layer.trainable_weights  # weight is its seed generator's state
    return any(type(layer) is getattr(keras.layers, name) for name in PER_EXAMPLE) and not layer.weights
