"""The autopilot fetching from S3 for real: boto3 over HTTP against a moto server on 127.0.0.1."""

import hashlib
import random
import time
from dataclasses import replace

import pytest

from orchestrator.pipeline import Source
from orchestrator.run import run_pipeline
from tests.conftest import DAY, rows_for
from tests.s3_server import BlackHoleServer, FaultProxy


def csv_bytes(rows):
    return ("sale_id,date,amount,product_id\n" + "".join(",".join(r) + "\n" for r in rows)).encode()


@pytest.fixture
def aws(monkeypatch, s3_server):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
    return s3_server


def s3_pipeline(sales, bucket, *, fallback=None, checksum=None, retry_attempts=3, timeout_s=10.0):
    source = Source(uri=f"s3://{bucket}/sales/{{date}}.csv", fallback=fallback, checksum=checksum,
                    min_bytes=16, timeout_s=timeout_s)
    steps = dict(sales.steps)
    fetch = steps["fetch-file"]
    steps["fetch-file"] = replace(fetch, retry=replace(fetch.retry, attempts=retry_attempts, budget_s=30))
    return replace(sales, source=source, steps=steps)


def run(pipeline, sleeps=None):
    return run_pipeline(pipeline, run_date=DAY, sleep=sleeps if sleeps is not None else (lambda s: None),
                        rng=random.Random(0))


def test_fetches_from_s3_and_loads(aws, sales):
    bucket = aws.bucket()
    aws.client().put_object(Bucket=bucket, Key=f"sales/{DAY}.csv", Body=csv_bytes(rows_for(DAY, count=80)))
    result = run(s3_pipeline(sales, bucket))
    assert result.status == "success"
    assert result.counts["loaded"] == 80


def test_checksum_sidecar_mismatch_goes_to_the_fallback(aws, sales, tmp_path):
    bucket = aws.bucket()
    body = csv_bytes(rows_for(DAY, count=50))
    aws.client().put_object(Bucket=bucket, Key=f"sales/{DAY}.csv", Body=body)
    aws.client().put_object(Bucket=bucket, Key=f"sales/{DAY}.csv.sha256", Body=b"0" * 64 + b"  x.csv\n")
    backup = aws.bucket()
    aws.client().put_object(Bucket=backup, Key=f"sales/{DAY}.csv", Body=body)
    aws.client().put_object(Bucket=backup, Key=f"sales/{DAY}.csv.sha256",
                            Body=hashlib.sha256(body).hexdigest().encode() + b"  x.csv\n")
    pipeline = s3_pipeline(sales, bucket, fallback=f"s3://{backup}/sales/{DAY}.csv", checksum="sidecar")
    result = run(pipeline)
    assert result.status == "healed"
    first = [s for s in result.steps if s["step"] == "fetch-file"]
    assert first[0]["failure_class"] == "checksum_mismatch" and len(first) == 1  # not retried: not transient
    assert "use-fallback-source" in result.remediations


def test_missing_object_goes_to_the_fallback(aws, sales):
    bucket, backup = aws.bucket(), aws.bucket()
    aws.client().put_object(Bucket=backup, Key=f"sales/{DAY}.csv", Body=csv_bytes(rows_for(DAY, count=30)))
    result = run(s3_pipeline(sales, bucket, fallback=f"s3://{backup}/sales/{{date}}.csv"))
    assert result.status == "healed"
    assert result.counts["loaded"] == 30


def test_an_injected_5xx_is_retried_then_succeeds(aws, sales, monkeypatch, sleeps):
    bucket = aws.bucket()
    aws.client().put_object(Bucket=bucket, Key=f"sales/{DAY}.csv", Body=csv_bytes(rows_for(DAY, count=40)))
    with FaultProxy(aws.endpoint_url, fail_first=1, status=503) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint_url)
        result = run(s3_pipeline(sales, bucket), sleeps=sleeps)
    fetches = [s for s in result.steps if s["step"] == "fetch-file"]
    assert [(s["attempt"], s["failure_class"]) for s in fetches] == [(1, "transient"), (2, None)]
    assert len(sleeps) == 1 and sleeps[0] > 0
    assert result.status == "healed" and result.counts["loaded"] == 40


def test_a_server_that_never_answers_gives_bounded_retries_then_escalation(aws, sales, monkeypatch, sleeps):
    with BlackHoleServer() as hole:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", hole.url)
        started = time.monotonic()
        result = run(s3_pipeline(sales, "vendor", retry_attempts=3, timeout_s=0.3), sleeps=sleeps)
        elapsed = time.monotonic() - started
    fetches = [s for s in result.steps if s["step"] == "fetch-file"]
    assert [s["failure_class"] for s in fetches] == ["transient"] * 3
    assert len(sleeps) == 2
    assert result.status == "escalated"
    assert result.alerts[0]["failure_class"] in ("transient", "source_missing")
    assert elapsed < 20
