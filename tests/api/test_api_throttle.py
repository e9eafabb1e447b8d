"""Failed bearer tokens are throttled per client address (issue 8 §5): 429 with Retry-After
once the budget is spent, while a valid token — from the same address — still works."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.throttle import MAX_FAILURES, AuthThrottle


def _wrong(k: int) -> dict[str, str]:
    return {"Authorization": f"Bearer ewc_wrong_{k:04d}"}


def _freeze(client: TestClient) -> None:
    """Stop the budget's refill, so a slow machine cannot blur the counts."""
    client.app.state.auth_throttle.clock = lambda: 1000.0


def test_wrong_tokens_are_throttled_and_a_valid_one_still_works(client, admin) -> None:
    _freeze(client)
    assert client.get("/v1/experiments", headers=admin).status_code == 200
    codes = [client.get("/v1/experiments", headers=_wrong(k)).status_code for k in range(40)]
    assert codes[:MAX_FAILURES] == [401] * MAX_FAILURES
    assert set(codes[MAX_FAILURES:]) == {429}
    refused = client.get("/v1/experiments", headers=_wrong(99))
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "too many failed" in refused.json()["detail"]
    # The valid token, from the same client, meanwhile:
    for _ in range(5):
        assert client.get("/v1/experiments", headers=admin).status_code == 200


def test_the_budget_is_per_client_address(make_client, admin) -> None:
    attacker = make_client()
    _freeze(attacker)
    for k in range(MAX_FAILURES + 5):
        attacker.get("/v1/queues", headers=_wrong(k))
    assert attacker.get("/v1/queues", headers=_wrong(0)).status_code == 429
    other = TestClient(attacker.app, client=("10.1.2.3", 40000))
    assert other.get("/v1/queues", headers=_wrong(1)).status_code == 401


def test_a_spent_budget_refills_with_time() -> None:
    now = [0.0]
    throttle = AuthThrottle(max_failures=3, window_s=30.0, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("c") == 0
        throttle.failed("c")
    wait = throttle.retry_after("c")
    assert 1 <= wait <= 10  # one attempt comes back every 10 s
    now[0] += wait
    assert throttle.retry_after("c") == 0
    assert throttle.retry_after("someone else") == 0
