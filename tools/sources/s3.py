"""S3 deliveries: one GET through boto3, streamed to disk, failures classified by error code."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import Any

from tools.sources.checksums import CHUNK_BYTES, Hasher, checker, expected_checksums
from tools.sources.download import download, safe_name
from tools.sources.redaction import fail
from tools.sources.templating import s3_location
from tools.verdict import SourceError

__all__ = ["fetch_s3"]

_S3_MISSING = {
    "NoSuchKey": "object not found",
    "NotFound": "object not found",
    "NoSuchBucket": "bucket not found",
}
_S3_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AccountProblem",
    "Forbidden",
}
_S3_TRANSIENT = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "RequestLimitExceeded",
    "TooManyRequests",
    "OperationAborted",
    "BandwidthLimitExceeded",
}


def _s3_error(uri: str, exc: Exception) -> SourceError:
    """Classify a boto3/botocore failure."""
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        detail = f"{code or 'error'} (HTTP {status})" + (
            f": {error['Message']}" if error.get("Message") else ""
        )
        if code in _S3_MISSING:
            return fail(uri, f"{_S3_MISSING[code]}: {detail}", "source_missing")
        if code in _S3_DENIED or status in (401, 403):
            return fail(uri, f"access denied: {detail}", "source_missing")
        if code in _S3_TRANSIENT or status in (408, 429) or status >= 500:
            return fail(uri, f"temporary S3 error: {detail}", "transient")
        if status == 404:
            return fail(uri, f"object not found: {detail}", "source_missing")
        return fail(uri, f"S3 refused the request: {detail}", "source_missing")
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        what = "access denied: no usable AWS credentials; set AWS_ACCESS_KEY_ID and "
        return fail(uri, what + "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE", "source_missing")
    if isinstance(exc, bx.FlexibleChecksumError):
        return fail(
            uri,
            f"checksum mismatch against the object's stored checksum: {exc}",
            "checksum_mismatch",
        )
    if isinstance(exc, bx.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return fail(uri, f"TLS certificate not trusted: {exc}", "source_missing")
    if isinstance(exc, (bx.ConnectTimeoutError, bx.ReadTimeoutError)):
        return fail(uri, f"timed out: {exc}", "transient")
    return fail(uri, f"connection failed: {exc}", "transient")


def _s3_client(endpoint_url: str | None, timeout_s: float) -> Any:
    import boto3
    from botocore.config import Config

    endpoint = (
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    # botocore's "max_attempts" counts retries (1 would mean two requests); one request in all:
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        user_agent_extra="heal-pipeline",
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint or None, config=config)


def _s3_stored_sha256(response: dict[str, Any]) -> tuple[str, str] | None:
    """The object's own full-object sha256 as hex, when S3 has one (not multipart composites)."""
    import base64
    import binascii

    value = response.get("ChecksumSHA256")
    if not value or "-" in value or response.get("ChecksumType") == "COMPOSITE":
        return None
    try:
        return "sha256", base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return None


def fetch_s3(
    uri: str,
    dest_dir: Path,
    *,
    min_bytes: int,
    checksum: str | None,
    timeout_s: float,
    endpoint_url: str | None,
) -> tuple[Path, Hasher, str | None]:
    from botocore import exceptions as bx

    bucket, key = s3_location(uri)
    client = _s3_client(endpoint_url, timeout_s)

    def read_text(suffix: str) -> str | None:
        try:
            side = client.get_object(Bucket=bucket, Key=key + suffix)
        except bx.ClientError as exc:  # without s3:ListBucket a missing key answers 403
            if exc.response.get("Error", {}).get("Code") in (
                "NoSuchKey",
                "NotFound",
                "AccessDenied",
            ):
                return None
            raise _s3_error(uri + suffix, exc) from None
        except bx.BotoCoreError as exc:
            raise _s3_error(uri + suffix, exc) from None
        try:  # StreamingBody's context manager yields the raw stream, so close by hand
            return side["Body"].read(1024 * 1024).decode("utf-8", errors="replace")
        finally:
            side["Body"].close()

    try:
        response = client.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except (bx.BotoCoreError, bx.ClientError) as exc:
        raise _s3_error(uri, exc) from None
    body = response["Body"]
    try:
        size = int(response.get("ContentLength", 0))
        if size < min_bytes:
            raise fail(uri, f"{size} bytes; expected at least {min_bytes}", "source_too_small")
        expected = expected_checksums(uri, checksum, read_text, posixpath.basename(key))
        stored = _s3_stored_sha256(response)
        if stored is not None:
            expected.append((stored, "s3"))
        dest = dest_dir / safe_name(posixpath.basename(key), "object")
        check = checker(uri, declared=size, min_bytes=min_bytes, expected=expected)
        try:
            hasher, verified = download(
                body.iter_chunks(CHUNK_BYTES), dest, check, Hasher.for_checks(expected)
            )
        except (bx.BotoCoreError, bx.ClientError) as exc:
            raise _s3_error(uri, exc) from None
    finally:
        body.close()
    return dest, hasher, verified

