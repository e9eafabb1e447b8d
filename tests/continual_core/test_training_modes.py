"""Batch-norm, dropout and augmentation behave as in training only inside training steps
(the original never updated batch-norm statistics, never dropped, and augmented in the
Fisher and in evaluation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from continual_core.datasets import load_dataset
from continual_core.learner import Learner
from continual_core.spec import ExperimentSpec
from continual_core.tasks import make_tasks

CIFAR_SHAPED = {"height": 32, "width": 32, "channels": 3, "classes": 10, "train_size": 200,
                "test_size": 50}


def _learner(tmp_path: Path, **kw) -> tuple[Learner, list]:
    spec = ExperimentSpec(model="cifarnet", dataset="synthetic", synthetic=CIFAR_SHAPED,
                          dataset_update="full", epochs=1, batch_size=50, **kw)
    return Learner(spec), make_tasks(spec, load_dataset(spec, tmp_path))


def _moving_stats(learner: Learner) -> list[np.ndarray]:
    return [v.numpy().copy() for v in learner.model.non_trainable_variables if "moving" in v.path]


def test_batch_norm_statistics_update_in_training_steps_only(tmp_path: Path) -> None:
    learner, (task,) = _learner(tmp_path)
    before = _moving_stats(learner)
    assert before, "cifarnet has batch-norm layers"
    x, y = task.split("train")
    learner.accuracy(tf.constant(x), y, [0, len(y)])  # evaluation: statistics untouched
    assert all(np.array_equal(a, b) for a, b in zip(before, _moving_stats(learner)))
    learner.start_task(1)
    order = np.arange(len(y))
    learner.train_epoch(tf.constant(x), tf.constant(y), order, lambda: False)
    after = _moving_stats(learner)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after)), "statistics trained"


def test_dropout_drops_in_training_and_not_in_evaluation(tmp_path: Path) -> None:
    learner, (task,) = _learner(tmp_path)
    x = tf.constant(task.split("test")[0][:8])
    eval_1, eval_2 = learner.model(x, training=False), learner.model(x, training=False)
    np.testing.assert_array_equal(eval_1.numpy(), eval_2.numpy())
    train_1, train_2 = learner.model(x, training=True), learner.model(x, training=True)
    assert not np.allclose(train_1.numpy(), train_2.numpy()), "dropout is active in training"


def test_augmentation_is_outside_the_model_evaluation_and_fisher(tmp_path: Path) -> None:
    plain, (task,) = _learner(tmp_path, ewc={})
    augmented, _ = _learner(tmp_path, ewc={}, augment=True)
    assert augmented.augmenter is not None and plain.augmenter is None
    names = [layer.name for layer in augmented.model.layers]
    assert not any("random" in n or "augment" in n for n in names), names  # saved model clean
    augmented.model.set_weights(plain.model.get_weights())
    x, y = task.split("test")
    # same weights → same evaluation and the same Fisher, with or without --augment
    assert plain.accuracy(tf.constant(x), y, [0, len(y)]) == augmented.accuracy(
        tf.constant(x), y, [0, len(y)]
    )
    xs, ys = task.split("train")
    for a, b in zip(plain.estimate_fisher(xs, ys, 1, 20), augmented.estimate_fisher(xs, ys, 1, 20)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
