"""/healthz, /readyz, /metrics and the OpenAPI document."""

from __future__ import annotations

from api_helpers import publish
from fastapi.testclient import TestClient

from serving.store import Store


def test_health_and_readiness(store: Store, client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["cause"] == "no_active_version"
    publish(store, "v1")
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json() == {
        "ready": True,
        "version": "v1",
        "degraded": False,
        "cause": None,
        "compiled": True,  # the tests run with the JIT on
    }


def test_metrics_count_latency_degraded_answers_and_version(
    store: Store, client: TestClient
) -> None:
    client.get("/v1/customers/c1/recommendations")  # nothing published: degraded
    publish(store, "v1")
    client.get("/v1/customers/c1/recommendations")
    text = client.get("/metrics").text
    assert (
        'recsys_request_seconds_count{endpoint="/v1/customers/{customer_id}/recommendations",'
        'method="GET",status="2xx"} 2.0' in text
    )
    assert (
        'recsys_degraded_answers_total{cause="no_active_version",endpoint="recommendations"} 1.0'
        in text
    )
    assert 'recsys_active_version_info{version="v1"} 1.0' in text
    assert "recsys_compiled 1.0" in text


def test_openapi_documents_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    recs = paths["/v1/customers/{customer_id}/recommendations"]["get"]
    assert {p["name"] for p in recs["parameters"]} >= {"customer_id", "n", "context", "exclude"}
    assert recs["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "RecommendationsResponse"
    )
    assert "422" in recs["responses"]
    assert "404" in paths["/v1/items/{item_id}/similar"]["get"]["responses"]
    assert {"413", "422", "503"} <= set(paths["/v1/events"]["post"]["responses"])
    assert "413" in paths["/v1/email/recommendations"]["post"]["responses"]
    for path in paths.values():
        for op in path.values():
            assert op.get("summary"), op
            if op.get("parameters") or op.get("requestBody"):  # one 422 shape, documented
                schema = op["responses"]["422"]["content"]["application/json"]["schema"]
                assert schema["$ref"].endswith("/ValidationErrorResponse"), op["summary"]
