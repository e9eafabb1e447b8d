"""The worker's TensorBoard callback writes readable event files with the right scalars."""

from __future__ import annotations

import pytest

from continual_core.events import Callback, CallbackList, EpochEnd, RunStart, TaskEnd
from tests.requirements import require_module
from worker.tensorboard import TensorBoardCallback, hparams, run_name, with_tensorboard

tf = require_module("tensorflow", hint="pip install -e '.[cpu]'")


def read_scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value)]} from every event file under `log_dir`, all of them scalars."""
    return read_scalars_of(log_dir, only_scalars=True)


def read_scalars_of(log_dir, only_scalars: bool = False) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value)]} of the scalars in the event files of `log_dir`."""
    from tensorflow.python.framework import tensor_util

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "scalars":
                    assert not only_scalars, value.tag
                    continue
                number = float(tensor_util.MakeNdarray(value.tensor))
                out.setdefault(value.tag, []).append((event.step, number))
    return out


def test_epoch_and_task_scalars(tmp_path):
    cb = TensorBoardCallback(tmp_path / "tb")
    cb.on_epoch_end(EpochEnd(task=1, epoch=1, task_epoch=1, loss=0.5, val_accuracy=[0.8, 0.1],
                             train_s=0.1, eval_s=0.0))
    cb.on_epoch_end(EpochEnd(task=2, epoch=2, task_epoch=1, loss=0.25, val_accuracy=[0.7, 0.9],
                             train_s=0.1, eval_s=0.0))
    cb.on_task_end(TaskEnd(task=2, test_accuracy=[0.6, 0.8], frozen_fraction=0.25))
    assert not cb._broken
    cb.close()
    scalars = read_scalars(tmp_path / "tb")
    assert scalars["loss"] == [(1, 0.5), (2, 0.25)]
    assert [s for s, _ in scalars["val_accuracy/task_2"]] == [1, 2]
    assert scalars["val_accuracy/task_2"][1][1] == pytest.approx(0.9)
    assert scalars["test_accuracy/task_1"] == [(2, pytest.approx(0.6))]
    assert scalars["test_accuracy/mean_seen"] == [(2, pytest.approx(0.7))]
    assert scalars["frozen_fraction"] == [(2, 0.25)]


def test_a_broken_folder_never_fails_the_job(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cb = TensorBoardCallback(blocker / "tb")
    cb.on_epoch_end(EpochEnd(task=1, epoch=1, task_epoch=1, loss=0.5, val_accuracy=[0.8],
                             train_s=0.1, eval_s=0.0))  # logs a warning, raises nothing
    assert cb._broken


def test_with_tensorboard_keeps_the_stop_signal(tmp_path):
    class Stopper(Callback):
        def should_stop(self) -> bool:
            return True

    combined = with_tensorboard(Stopper(), tmp_path)
    assert isinstance(combined, CallbackList) and combined.should_stop()
    assert combined.callbacks[1].log_dir == tmp_path / "tensorboard"


def test_tensorboard_itself_shows_the_scalars(tmp_path):
    """TensorBoard's own loader (what `tensorboard --logdir` serves) sees scalar tags."""
    require_module("tensorboard", hint="pip install -e '.[cpu]'")
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    cb = TensorBoardCallback(tmp_path / "tb")
    cb.on_epoch_end(EpochEnd(task=1, epoch=1, task_epoch=1, loss=0.5, val_accuracy=[0.8, 0.1],
                             train_s=0.1, eval_s=0.0))
    cb.close()
    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(tmp_path / "tb"))
    mux.Reload()
    tags = mux.PluginRunToTagToContent("scalars")["."]
    assert {"loss", "val_accuracy/task_1", "val_accuracy/task_2"} <= set(tags)
    values = mux.Tensors(".", "val_accuracy/task_1")
    assert [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in values] == [(1, pytest.approx(0.8))]


# A job's run: a readable folder, the HParams record, the final metrics ----------------------


def read_hparams(log_dir) -> dict[str, object]:
    """{name: value} of the HParams plugin's session start in the event files of `log_dir`
    (what TensorBoard's HParams tab reads), parsed with the plugin's own protos."""
    require_module("tensorboard", hint="pip install -e '.[cpu]'")
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    found: dict[str, object] = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != metadata.PLUGIN_NAME:
                    continue
                assert value.tag == metadata.SESSION_START_INFO_TAG
                data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                for name, v in data.session_start_info.hparams.items():
                    found[name] = getattr(v, v.WhichOneof("kind"))
    return found


SPEC = {"dataset": "digits", "dataset_update": "permute", "splits": 2, "epochs": 2, "seed": 3,
        "learning_rate": 0.002, "hidden": [32], "tags": ["x"], "priority": 5,
        "ewc": {"lambda": 100.0, "samples": 10, "gamma": 1.0, "normalize": False}, "fim": None}  # fmt: skip


def test_run_names_are_readable_and_stable():
    assert run_name(12, "EWC λ=100, permute!", SPEC) == "12-ewc-100-permute"
    assert run_name(12, None, SPEC) == "12-digits-permute-ewc-l100"
    assert run_name(7, None, {"dataset": "mnist", "dataset_update": "full"}) == "7-mnist-full"
    assert run_name(7, "   ", {}) == "7"
    assert len(run_name(1, "x" * 300, {})) <= 2 + 48


def test_hparams_are_the_flattened_spec_with_method_flags():
    hp = hparams(SPEC, "lam100")
    assert hp["ewc"] is True and hp["fim"] is False and hp["ewc.lambda"] == 100.0
    assert hp["dataset"] == "digits" and hp["seed"] == 3 and hp["learning_rate"] == 0.002
    assert hp["hidden"] == "[32]" and hp["name"] == "lam100"
    assert not {"tags", "priority", "fim.lambda"} & set(hp)


def test_a_job_run_carries_its_hparams_and_final_metrics(tmp_path):
    cb = TensorBoardCallback.for_job(tmp_path, 12, "lam100", SPEC)
    assert cb.log_dir == tmp_path / "tensorboard" / "12-lam100"
    cb.on_run_start(RunStart(num_tasks=2, epochs_per_task=[1, 1], first_task=1))
    cb.on_epoch_end(EpochEnd(task=1, epoch=1, task_epoch=1, loss=0.5, val_accuracy=[0.8, 0.1],
                             train_s=0.1, eval_s=0.0))  # fmt: skip
    cb.write_summary({"average_accuracy": 0.75, "bwt": -0.05, "fwt": None, "forgetting": 0.05})
    cb.close()
    hp = read_hparams(cb.log_dir)
    assert hp["ewc.lambda"] == 100.0 and hp["ewc"] is True and hp["fim"] is False
    assert hp["dataset"] == "digits" and hp["seed"] == 3.0 and hp["name"] == "lam100"
    scalars = read_scalars_of(cb.log_dir)
    assert scalars["summary/average_accuracy"] == [(2, pytest.approx(0.75))]
    assert scalars["summary/bwt"] == [(2, pytest.approx(-0.05))]
    assert "summary/fwt" not in scalars  # undefined: not written as a number
    assert scalars["loss"] == [(1, 0.5)]


def test_tensorboard_over_many_experiments_sees_named_runs_to_sort_by_lambda(tmp_path):
    """`tensorboard --logdir <artifacts>/experiments`: a run per job named by its folder,
    each with its HParams session (λ) and its final average accuracy."""
    require_module("tensorboard", hint="pip install -e '.[cpu]'")
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
    from tensorboard.plugins.hparams import metadata

    experiments = tmp_path / "experiments"
    for exp_id, lam, avg in ((3, 1000.0, 0.7), (4, 10.0, 0.8), (5, None, 0.6)):
        spec = {**SPEC, "ewc": {**SPEC["ewc"], "lambda": lam} if lam else None}
        cb = TensorBoardCallback.for_job(experiments / str(exp_id), exp_id, None, spec)
        cb.on_run_start(RunStart(num_tasks=2, epochs_per_task=[1, 1], first_task=1))
        cb.write_summary({"average_accuracy": avg})
        cb.close()
    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(experiments))
    mux.Reload()
    sessions = mux.PluginRunToTagToContent(metadata.PLUGIN_NAME)
    assert set(sessions) == {"3/tensorboard/3-digits-permute-ewc-l1000",
                             "4/tensorboard/4-digits-permute-ewc-l10",
                             "5/tensorboard/5-digits-permute"}  # fmt: skip
    by_lambda = {}
    for run, tags in sessions.items():
        info = metadata.parse_session_start_info_plugin_data(tags[metadata.SESSION_START_INFO_TAG])
        lam = info.hparams["ewc.lambda"].number_value if "ewc.lambda" in info.hparams else None
        [avg] = mux.Tensors(run, "summary/average_accuracy")
        by_lambda[lam] = round(float(tf.make_ndarray(avg.tensor_proto)), 4)
        assert info.group_name == run.rsplit("/", 1)[1]  # the trial: the readable run name
        assert info.hparams["ewc"].bool_value is (lam is not None)
    assert by_lambda == {1000.0: 0.7, 10.0: 0.8, None: 0.6}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_job_writes_its_named_run_with_hparams_and_its_stored_summary(
    tmp_path, database_url, session_factory, make_user, make_job
):
    from common.settings import Settings
    from store import claims
    from store.db import unit_of_work
    from store.models import Experiment, JobStatus
    from worker.runner import checkpoint_dir, run_job

    settings = Settings(data_dir=tmp_path / "data", database_url=database_url,
                        dataset_cache=tmp_path / "datasets", heartbeat_s=0.05)  # fmt: skip
    spec = {"dataset": "digits", "dataset_update": "permute", "splits": 2, "epochs": 2,
            "seed": 0, "ewc": {"lambda": 10.0}}  # fmt: skip
    job_id = make_job(make_user("alice"), spec=spec, name="ewc ten")
    with unit_of_work(session_factory) as s:
        job = claims.claim_next_job(s, ["cpu"], "w1", 30, 3)
    outcome = run_job(job, worker="w1", settings=settings, sessions=session_factory, device="CPU")
    assert outcome.status is JobStatus.succeeded, outcome
    folder = checkpoint_dir(settings, job_id) / "tensorboard"
    assert [p.name for p in folder.iterdir()] == [f"{job_id}-ewc-ten"]
    run = folder / f"{job_id}-ewc-ten"
    hp = read_hparams(run)
    assert hp["ewc.lambda"] == 10.0 and hp["ewc"] is True and hp["fim"] is False
    assert hp["dataset_update"] == "permute" and hp["name"] == "ewc ten"
    with session_factory() as s:
        summary = s.get(Experiment, job_id).summary
    scalars = read_scalars_of(run)
    assert scalars["summary/average_accuracy"] == [(2, pytest.approx(summary["average_accuracy"]))]
    assert scalars["summary/forgetting"] == [(2, pytest.approx(summary["forgetting"]))]
    assert [step for step, _ in scalars["loss"]] == [1, 2]
