"""Purging an experiment whose artifacts live in a REAL S3 endpoint (moto's server behind a
TCP proxy, tests/harness/s3.py): every object of the run goes (checkpoint versions and
manifests included), another run's stay; with the endpoint gone the purge is a 503 with
Retry-After and the run is still there."""

# ruff: noqa: F811 - pytest fixtures imported by name are the test functions' parameters
from __future__ import annotations

from store.models import JobStatus
from tests.api.test_api_artifacts_s3 import bucket, moto, proxy, worker_writes  # noqa: F401
from tests.fixtures.api_client import ADMIN_TOKEN
from tests.harness.s3 import bucket_keys


def test_purge_deletes_the_runs_objects_in_the_bucket_and_waits_out_an_outage(
    bucket,
    proxy,
    make_client,
    make_user,
    make_experiment,
    tmp_path,
):
    url = f"s3://{bucket}/team"
    bob = make_user("bob")
    gone, kept = (make_experiment(bob, num_tasks=2, status=JobStatus.succeeded) for _ in range(2))
    for exp in (gone, kept):
        worker_writes(url, exp, tmp_path / f"host-b-{exp}" / "work")
    api = make_client(artifacts_url=url, data_dir=tmp_path / "host-a")
    api.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    before = bucket_keys(proxy.url, bucket)
    assert any(k.startswith(f"team/experiments/{gone}/") for k in before)

    proxy.stop()
    try:
        resp = api.post(f"/v1/experiments/{gone}/purge")
        assert resp.status_code == 503 and resp.headers.get("Retry-After") == "5", resp.text
        assert "nothing was purged" in resp.json()["detail"]
    finally:
        proxy.start()
    assert api.get(f"/v1/experiments/{gone}").status_code == 200

    resp = api.post(f"/v1/experiments/{gone}/purge")
    assert resp.status_code == 200, resp.text
    after = bucket_keys(proxy.url, bucket)
    mine = [k for k in before if k.startswith(f"team/experiments/{gone}/")]
    assert resp.json()["artifacts_deleted"] == len(mine)
    assert not [k for k in after if k.startswith(f"team/experiments/{gone}/")]
    assert after == [k for k in before if k not in mine]  # the other run's objects stay
    assert api.get(f"/v1/experiments/{gone}").status_code == 404
    assert api.get(f"/v1/experiments/{kept}/artifacts").json()["items"]
