"""`/v1/queues` lists live workers with their device; `/metrics` has the job and epoch
duration histograms and each worker's heartbeat age, all read from the database."""

from __future__ import annotations

from datetime import timedelta

from store import workers
from store.db import unit_of_work
from store.models import EpochMetric, Experiment, JobStatus, Worker, utcnow


def _presence(session_factory, name: str, queues: list[str], device: str, age_s: float = 0):
    with unit_of_work(session_factory) as s:
        workers.report_presence(
            s, name, hostname="h1", queues=queues, device=device, experiment_id=None, jobs_run=3
        )
        if age_s:
            s.get(Worker, name).last_heartbeat = utcnow() - timedelta(seconds=age_s)


def test_queues_list_live_workers_per_queue_with_their_device(
    make_client, user_headers, session_factory, spec
) -> None:
    client = make_client(heartbeat_timeout_s=30)
    ann = user_headers("ann")
    client.post("/v1/experiments", json=spec, headers=ann)
    _presence(session_factory, "h1:1:a", ["cpu"], "CPU")
    _presence(session_factory, "h2:2:b", ["cpu", "gpu"], "GPU:0 (NVIDIA A100)")
    _presence(session_factory, "h3:3:c", ["gpu"], "GPU:0 (T4)", age_s=300)  # killed

    body = client.get("/v1/queues", headers=ann).json()
    cpu, gpu = body["queues"]["cpu"], body["queues"]["gpu"]
    assert (cpu["waiting"], cpu["running"]) == (1, 0)
    assert {w["name"]: w["device"] for w in cpu["workers"]} == {
        "h1:1:a": "CPU",
        "h2:2:b": "GPU:0 (NVIDIA A100)",
    }
    assert [w["name"] for w in gpu["workers"]] == ["h2:2:b"]
    assert all(w["alive"] and w["heartbeat_age_s"] < 30 for w in cpu["workers"])
    assert [(w["name"], w["alive"]) for w in body["dead_workers"]] == [("h3:3:c", False)]


def test_a_worker_row_is_refreshed_not_duplicated_and_removed_on_stop(session_factory) -> None:
    _presence(session_factory, "h1:1:a", ["cpu"], "CPU", age_s=100)
    _presence(session_factory, "h1:1:a", ["cpu"], "CPU")
    with session_factory() as s:
        (only,) = workers.list_workers(s, heartbeat_timeout_s=30)
    assert only.alive and only.jobs_run == 3
    with unit_of_work(session_factory) as s:
        workers.remove_worker(s, "h1:1:a")
    with session_factory() as s:
        assert workers.list_workers(s, heartbeat_timeout_s=30) == []


def test_metrics_have_duration_histograms_and_heartbeat_ages(
    client, user_headers, session_factory, spec
) -> None:
    ann = user_headers("ann")
    ids = [client.post("/v1/experiments", json=spec, headers=ann).json()["id"] for _ in range(3)]
    now = utcnow()
    with unit_of_work(session_factory) as s:
        for exp_id, seconds, status in zip(
            ids, (3, 45, 4000), (JobStatus.succeeded, JobStatus.succeeded, JobStatus.failed),
            strict=True,
        ):
            e = s.get(Experiment, exp_id)
            e.status, e.started_at = status, now - timedelta(seconds=seconds)
            e.finished_at = now
        for epoch, train_s in enumerate((0.2, 0.7, 3.0), start=1):
            s.add(EpochMetric(experiment_id=ids[0], task=1, epoch=epoch, task_epoch=epoch,
                              loss=1.0, val_accuracy=[0.5], train_s=train_s, eval_s=0.1))
    _presence(session_factory, "h1:1:a", ["cpu"], "CPU", age_s=7)

    text = client.get("/metrics").text
    assert 'ewc_job_duration_seconds_bucket{le="5.0",status="succeeded"} 1.0' in text
    assert 'ewc_job_duration_seconds_bucket{le="60.0",status="succeeded"} 2.0' in text
    assert 'ewc_job_duration_seconds_count{status="succeeded"} 2.0' in text
    assert 'ewc_job_duration_seconds_bucket{le="3600.0",status="failed"} 0.0' in text
    assert 'ewc_job_duration_seconds_bucket{le="7200.0",status="failed"} 1.0' in text
    assert 'ewc_epoch_duration_seconds_bucket{le="0.5"} 1.0' in text
    assert 'ewc_epoch_duration_seconds_bucket{le="1.0"} 2.0' in text
    assert 'ewc_epoch_duration_seconds_count 3.0' in text
    assert 'ewc_epoch_duration_seconds_sum 4.2' in text
    line = next(x for x in text.splitlines() if x.startswith("ewc_worker_heartbeat_age_seconds{"))
    assert 'worker="h1:1:a"' in line and 'device="CPU"' in line
    assert 7 <= float(line.rsplit(" ", 1)[1]) < 60
    assert 'ewc_workers_alive{queue="cpu"} 1.0' in text
