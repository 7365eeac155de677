"""tools.sources against real servers on 127.0.0.1: moto S3 over HTTP, a fault proxy, files."""

from __future__ import annotations

import datetime
import hashlib
import time
from pathlib import Path

import pytest

from tools.sources import (
    Fetched,
    ensure_within,
    fetch,
    fingerprint,
    redact_uri,
    resolve_uri,
)
from tools.verdict import ConfigError, SourceError

try:
    from tests import s3_server as servers
except ModuleNotFoundError as exc:  # tests/ itself is on sys.path (pytest's default rootdir mode)
    if exc.name not in ("tests", "tests.s3_server"):
        raise
    import s3_server as servers

BlackHoleServer, FaultProxy, free_port = (
    servers.BlackHoleServer,
    servers.FaultProxy,
    servers.free_port,
)
s3_server, http_file_server = servers.s3_server, servers.http_file_server  # fixtures, by name

DAY = datetime.date(2024, 3, 5)
DATA = b"id,amount\n1,10.5\n2,20.0\n"
SHA = hashlib.sha256(DATA).hexdigest()
MD5 = hashlib.md5(DATA).hexdigest()


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials, no profile or endpoint from the host, loopback never proxied."""
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def put(s3, bucket: str, key: str, body: bytes, **extra) -> str:
    s3.client().put_object(Bucket=bucket, Key=key, Body=body, **extra)
    return f"s3://{bucket}/{key}"


def fail(failure_class: str, *args, **kwargs) -> str:
    with pytest.raises(SourceError) as info:
        fetch(*args, **kwargs)
    assert info.value.failure_class == failure_class, str(info.value)
    return str(info.value)


# -- S3 --------------------------------------------------------------------------------------


def test_fetch_s3_object_streams_to_dest_with_hashes(s3_server, tmp_path: Path) -> None:
    bucket = s3_server.bucket()
    uri = put(s3_server, bucket, "in/sales.csv", DATA)
    got = fetch(uri, tmp_path / "dl", s3_endpoint_url=s3_server.endpoint_url)
    assert isinstance(got, Fetched)
    assert got.local_path == tmp_path / "dl" / "sales.csv"
    assert got.local_path.read_bytes() == DATA
    assert (got.size, got.sha256, got.md5, got.uri) == (len(DATA), SHA, None, uri)  # md5 only when asked
    assert got.checksum_verified is None
    assert got.elapsed_ms > 0
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["sales.csv"]  # no .part left


def test_endpoint_comes_from_env(s3_server, tmp_path: Path, monkeypatch) -> None:
    uri = put(s3_server, s3_server.bucket(), "a.csv", DATA)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
    assert fetch(uri, tmp_path).sha256 == SHA


def test_date_template_resolves_and_fetches(s3_server, tmp_path: Path) -> None:
    bucket = s3_server.bucket()
    put(s3_server, bucket, "sales/2024-03-05/sales_20240305.csv", DATA)
    template = f"s3://{bucket}/sales/{{date}}/sales_{{yyyymmdd}}.csv"
    uri = resolve_uri(template, run_date=DAY)
    assert uri == f"s3://{bucket}/sales/2024-03-05/sales_20240305.csv"
    assert fetch(uri, tmp_path, s3_endpoint_url=s3_server.endpoint_url).sha256 == SHA
    assert resolve_uri("s3://b/{year}/{month}/{day}.csv", run_date=DAY) == "s3://b/2024/03/05.csv"
    with pytest.raises(ConfigError, match="unknown placeholder"):
        resolve_uri("s3://b/{hour}.csv", run_date=DAY)


@pytest.mark.parametrize(
    ("suffix", "text", "verified"),
    [
        (".sha256", f"{SHA}  sales.csv\n", "sidecar:sha256"),
        (".sha256", f"SHA256 (sales.csv) = {SHA}\n", "sidecar:sha256"),
        (".md5", f"{MD5}\n", "sidecar:md5"),
    ],
)
def test_sidecar_checksum_ok(
    s3_server, tmp_path: Path, suffix: str, text: str, verified: str
) -> None:
    bucket = s3_server.bucket()
    uri = put(s3_server, bucket, "sales.csv", DATA)
    put(s3_server, bucket, "sales.csv" + suffix, text.encode())
    got = fetch(uri, tmp_path, checksum="sidecar", s3_endpoint_url=s3_server.endpoint_url)
    assert got.checksum_verified == verified


def test_sidecar_checksum_mismatch_names_both_and_leaves_nothing(s3_server, tmp_path: Path) -> None:
    bucket = s3_server.bucket()
    uri = put(s3_server, bucket, "sales.csv", DATA)
    wrong = hashlib.sha256(b"other").hexdigest()
    put(s3_server, bucket, "sales.csv.sha256", f"{wrong}  sales.csv\n".encode())
    message = fail(
        "checksum_mismatch",
        uri,
        tmp_path,
        checksum="sidecar",
        s3_endpoint_url=s3_server.endpoint_url,
    )
    assert wrong in message and SHA in message
    assert list(tmp_path.iterdir()) == []


def test_sidecar_absent_is_source_missing(s3_server, tmp_path: Path) -> None:
    uri = put(s3_server, s3_server.bucket(), "sales.csv", DATA)
    message = fail(
        "source_missing", uri, tmp_path, checksum="sidecar", s3_endpoint_url=s3_server.endpoint_url
    )
    assert "sidecar not found" in message


def test_given_checksum(s3_server, tmp_path: Path) -> None:
    uri = put(s3_server, s3_server.bucket(), "sales.csv", DATA)
    ep = s3_server.endpoint_url
    assert (
        fetch(uri, tmp_path, checksum=f"md5:{MD5}", s3_endpoint_url=ep).checksum_verified == "md5"
    )
    assert (
        fetch(uri, tmp_path, checksum=f"sha256:{SHA.upper()}", s3_endpoint_url=ep).checksum_verified
        == "sha256"
    )
    fail("checksum_mismatch", uri, tmp_path, checksum="md5:" + "0" * 32, s3_endpoint_url=ep)
    with pytest.raises(ConfigError):
        fetch(uri, tmp_path, checksum="crc32:abcd", s3_endpoint_url=ep)


def test_object_stored_sha256_is_verified(s3_server, tmp_path: Path) -> None:
    uri = put(s3_server, s3_server.bucket(), "sales.csv", DATA, ChecksumAlgorithm="SHA256")
    got = fetch(uri, tmp_path, s3_endpoint_url=s3_server.endpoint_url)
    assert got.checksum_verified == "s3:sha256"
    with FaultProxy(s3_server.endpoint_url) as proxy:  # publish a wrong stored checksum
        proxy.response_headers["x-amz-checksum-sha256"] = (
            "2SmKENGwc1g33EvYXaxkGw887yekfl1TpU8vP1svz/o="
        )
        fail("checksum_mismatch", uri, tmp_path / "bad", s3_endpoint_url=proxy.endpoint_url)


def test_missing_object_and_bucket(s3_server, tmp_path: Path) -> None:
    bucket = s3_server.bucket()
    ep = s3_server.endpoint_url
    assert "object not found" in fail(
        "source_missing", f"s3://{bucket}/nope.csv", tmp_path, s3_endpoint_url=ep
    )
    assert "bucket not found" in fail(
        "source_missing", "s3://no-such-bucket-x/a.csv", tmp_path, s3_endpoint_url=ep
    )


def test_access_denied_is_permanent(s3_server, tmp_path: Path) -> None:
    uri = put(s3_server, s3_server.bucket(), "sales.csv", DATA)
    with FaultProxy(s3_server.endpoint_url, fail_first=1, status=403) as proxy:
        message = fail("source_missing", uri, tmp_path, s3_endpoint_url=proxy.endpoint_url)
    assert "access denied" in message and "AccessDenied" in message


@pytest.mark.parametrize(
    ("status", "code"), [(503, "SlowDown"), (500, "InternalError"), (400, "RequestTimeout")]
)
def test_transient_s3_error_once_then_ok(s3_server, tmp_path: Path, status: int, code: str) -> None:
    uri = put(s3_server, s3_server.bucket(), "sales.csv", DATA)
    with FaultProxy(s3_server.endpoint_url) as proxy:
        proxy.fail_next(1, status=status, code=code)
        message = fail("transient", uri, tmp_path, s3_endpoint_url=proxy.endpoint_url)
        assert code in message
        assert proxy.requests == 1  # boto itself did not retry: the graph owns retries
        assert fetch(uri, tmp_path, s3_endpoint_url=proxy.endpoint_url).sha256 == SHA
        assert proxy.requests == 2


def test_black_hole_times_out_as_transient(tmp_path: Path) -> None:
    with BlackHoleServer() as hole:
        for uri, ep in (("s3://bucket/sales.csv", hole.url), (f"{hole.url}/sales.csv", None)):
            started = time.monotonic()
            message = fail("transient", uri, tmp_path, timeout_s=0.5, s3_endpoint_url=ep)
            assert time.monotonic() - started < 1.5, message
            assert "timed out" in message


def test_connection_refused_is_transient(tmp_path: Path) -> None:
    port = free_port()
    fail(
        "transient",
        "s3://bucket/a.csv",
        tmp_path,
        timeout_s=0.5,
        s3_endpoint_url=f"http://127.0.0.1:{port}",
    )
    assert "refused" in fail("transient", f"http://127.0.0.1:{port}/a.csv", tmp_path, timeout_s=0.5)


@pytest.mark.parametrize(("body", "min_bytes"), [(b"", 1), (DATA, 1000)])
def test_small_object_is_too_small(s3_server, tmp_path: Path, body: bytes, min_bytes: int) -> None:
    uri = put(s3_server, s3_server.bucket(), "sales.csv", body)
    message = fail(
        "source_too_small",
        uri,
        tmp_path,
        min_bytes=min_bytes,
        s3_endpoint_url=s3_server.endpoint_url,
    )
    assert f"{len(body)} bytes; expected at least {min_bytes}" in message
    assert list(tmp_path.iterdir()) == []
    assert fetch(uri, tmp_path, min_bytes=0, s3_endpoint_url=s3_server.endpoint_url).size == len(
        body
    )


# -- HTTP ------------------------------------------------------------------------------------


def test_http_fetch_and_sidecar(http_file_server, tmp_path: Path) -> None:
    url = http_file_server.write("d/sales.csv", DATA)
    http_file_server.write("d/sales.csv.md5", f"{MD5} *sales.csv\n".encode())
    got = fetch(url, tmp_path, checksum="sidecar")
    assert (got.local_path.read_bytes(), got.sha256, got.checksum_verified) == (
        DATA,
        SHA,
        "sidecar:md5",
    )
    assert http_file_server.seen[-2:] == ["/d/sales.csv.sha256", "/d/sales.csv.md5"]


@pytest.mark.parametrize(
    ("status", "failure_class", "words"),
    [
        (404, "source_missing", "not found"),
        (410, "source_missing", "not found"),
        (403, "source_missing", "access denied"),
        (500, "transient", "HTTP 500"),
        (503, "transient", "HTTP 503"),
        (429, "transient", "HTTP 429"),
    ],
)
def test_http_status_classes(
    http_file_server, tmp_path: Path, status, failure_class, words
) -> None:
    url = http_file_server.write("sales.csv", DATA)
    http_file_server.statuses["/sales.csv"] = status
    assert words in fail(failure_class, url, tmp_path)


def test_http_missing_file_and_truncated_body(http_file_server, tmp_path: Path) -> None:
    assert "not found" in fail("source_missing", f"{http_file_server.url}/nope.csv", tmp_path)
    url = http_file_server.write("cut.csv", DATA)
    http_file_server.truncate["/cut.csv"] = 5
    assert f"5 of {len(DATA)} bytes" in fail("transient", url, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_http_basic_auth_and_credentials_never_leak(http_file_server, tmp_path: Path) -> None:
    http_file_server.auth = ("alice", "pa55-w0rd")
    http_file_server.write("sales.csv", DATA)
    host = http_file_server.url.split("://", 1)[1]
    good = f"http://alice:pa55-w0rd@{host}/sales.csv?X-Amz-Signature=feedfacecafe&day=5"
    got = fetch(good, tmp_path)
    assert got.sha256 == SHA
    assert "pa55-w0rd" not in got.uri and "feedfacecafe" not in got.uri and "day=5" in got.uri
    secrets = ("pa55-w0rd", "feedfacecafe", "s3kr1t-token")
    bad = f"http://alice:wrong-pa55-w0rd@{host}/sales.csv?token=s3kr1t-token"
    messages = [fail("source_missing", bad, tmp_path)]
    assert "access denied" in messages[0]
    http_file_server.auth = None
    messages.append(fail("source_missing", good.replace("sales.csv", "gone.csv"), tmp_path))
    with BlackHoleServer() as hole:
        hole_host = hole.url.split("://", 1)[1]
        messages.append(
            fail(
                "transient",
                f"https://alice:pa55-w0rd@{hole_host}/x?sig=feedfacecafe",
                tmp_path,
                timeout_s=0.3,
            )
        )
    for message in messages:
        assert not any(s in message for s in secrets), message
        assert "***" in message


def test_redact_uri() -> None:
    assert (
        redact_uri("https://u:p@h.example/a.csv?token=abc&x=1")
        == "https://***@h.example/a.csv?token=***&x=1"
    )
    assert redact_uri("s3://bucket/key.csv") == "s3://bucket/key.csv"
    assert redact_uri("data/*.csv") == "data/*.csv"


# -- local -----------------------------------------------------------------------------------


def test_local_file_is_not_copied(tmp_path: Path) -> None:
    src = tmp_path / "in" / "sales.csv"
    src.parent.mkdir()
    src.write_bytes(DATA)
    dest = tmp_path / "dl"
    got = fetch(str(src), dest, checksum=f"sha256:{SHA}")
    assert (got.local_path, got.size, got.sha256, got.checksum_verified) == (
        src,
        len(DATA),
        SHA,
        "sha256",
    )
    assert not dest.exists()
    assert fetch(src.as_uri(), dest).local_path == src
    (tmp_path / "in" / "sales.csv.sha256").write_text(f"{SHA}  sales.csv\n")
    assert fetch(str(src), dest, checksum="sidecar").checksum_verified == "sidecar:sha256"
    (tmp_path / "in" / "sales.csv.sha256").write_text(f"{MD5}\n")  # wrong width for sha256
    fail("checksum_mismatch", str(src), dest, checksum="sidecar")


def test_local_glob_and_folder_hash_sorted_concatenation(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.csv").write_bytes(b"bbb\n")
    (folder / "a.csv").write_bytes(b"aaa\n")
    (folder / "sub" / "c.csv").write_bytes(b"ccc\n")
    (folder / ".hidden.part").write_bytes(b"partial")
    glob_got = fetch(str(folder / "*.csv"), tmp_path)
    assert glob_got.local_path == folder / "*.csv"
    assert (glob_got.size, glob_got.sha256) == (8, hashlib.sha256(b"aaa\nbbb\n").hexdigest())
    dir_got = fetch(str(folder), tmp_path)
    assert dir_got.local_path == folder
    assert dir_got.sha256 == hashlib.sha256(b"aaa\nbbb\nccc\n").hexdigest() == fingerprint(folder)
    assert fetch(str(folder / "**" / "*.csv"), tmp_path).size == 12
    assert "no files match" in fail("source_missing", str(folder / "*.parquet"), tmp_path)
    with pytest.raises(ConfigError, match="single file"):
        fetch(str(folder), tmp_path, checksum="sidecar")


def test_local_missing_empty_and_too_small(tmp_path: Path) -> None:
    assert "file not found" in fail("source_missing", str(tmp_path / "nope.csv"), tmp_path)
    (tmp_path / "empty").mkdir()
    fail("source_missing", str(tmp_path / "empty"), tmp_path)
    (tmp_path / "zero.csv").write_bytes(b"")
    assert "0 bytes; expected at least 1" in fail(
        "source_too_small", str(tmp_path / "zero.csv"), tmp_path
    )


def test_only_the_checksum_a_check_asks_for_is_computed(tmp_path: Path) -> None:
    src = tmp_path / "sales.csv"
    src.write_bytes(DATA)
    assert (fetch(str(src), tmp_path).sha256, fetch(str(src), tmp_path).md5) == (SHA, None)
    got = fetch(str(src), tmp_path, checksum=f"md5:{MD5}")
    assert (got.sha256, got.md5, got.checksum_verified) == (SHA, MD5, "md5")
    (tmp_path / "sales.csv.md5").write_text(f"{MD5}  sales.csv\n")
    got = fetch(str(src), tmp_path, checksum="sidecar")
    assert (got.sha256, got.md5, got.checksum_verified) == (SHA, MD5, "sidecar:md5")
    assert fetch(str(src), tmp_path, checksum=f"sha256:{SHA}").md5 is None


def test_files_larger_than_one_read_hash_as_their_concatenated_bytes(tmp_path: Path) -> None:
    one, two = bytes(range(256)) * 9000 + b"tail", b"x" * (3 * 1024 * 1024 + 7)  # 2.2 MiB, 3 MiB + 7
    (tmp_path / "a.csv").write_bytes(one)
    (tmp_path / "b.csv").write_bytes(two)
    got = fetch(str(tmp_path / "*.csv"), tmp_path, checksum=f"md5:{hashlib.md5(one + two).hexdigest()}")
    assert (got.size, got.sha256) == (len(one + two), hashlib.sha256(one + two).hexdigest())
    assert fingerprint(tmp_path / "a.csv") == hashlib.sha256(one).hexdigest()


def test_fingerprint_identifies_content_not_name(tmp_path: Path) -> None:
    (tmp_path / "one.csv").write_bytes(DATA)
    (tmp_path / "two.csv").write_bytes(DATA)
    assert fingerprint(tmp_path / "one.csv") == fingerprint(str(tmp_path / "two.csv")) == SHA


# -- templating and containment ----------------------------------------------------------------


def test_resolve_local_relative_to_base_dir(tmp_path: Path) -> None:
    assert resolve_uri("data/{date}.csv", run_date=DAY, base_dir=tmp_path) == str(
        tmp_path / "data/2024-03-05.csv"
    )
    assert resolve_uri("/srv/in/{year}/x_{day}.csv", run_date=DAY) == "/srv/in/2024/x_05.csv"
    assert resolve_uri("data/{date}.csv", run_date=DAY) == "data/2024-03-05.csv"
    assert (
        resolve_uri("https://h.example/{yyyymmdd}.csv", run_date=DAY)
        == "https://h.example/20240305.csv"
    )


@pytest.mark.parametrize(
    "template",
    [
        "../outside/{date}.csv",
        "data/{date}/../../../etc/passwd",
        "/srv/in/{date}/../../secret.csv",
        "../../etc/passwd",
        "s3://bucket/in/{date}/../../x.csv",
    ],
)
def test_path_escape_is_config_error(tmp_path: Path, template: str) -> None:
    with pytest.raises(ConfigError, match="escapes"):
        resolve_uri(template, run_date=DAY, base_dir=tmp_path)


def test_ensure_within(tmp_path: Path) -> None:
    assert ensure_within(tmp_path / "a" / ".." / "b", tmp_path) == tmp_path / "b"
    with pytest.raises(ConfigError):
        ensure_within(tmp_path / ".." / "x", tmp_path)
    with pytest.raises(ConfigError):
        ensure_within(str(tmp_path) + "-sibling/x", tmp_path)


def test_bad_uris_are_config_errors(tmp_path: Path) -> None:
    for uri in ("ftp://h/x.csv", "s3://bucket/", "s3://bucket"):
        with pytest.raises(ConfigError):
            fetch(uri, tmp_path)
    with pytest.raises(ConfigError):
        fetch(str(tmp_path), tmp_path, timeout_s=0)
