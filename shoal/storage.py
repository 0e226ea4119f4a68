"""Audio in any S3-compatible store, through boto3.

Objects are named only from server-generated ids (`audio_key`). Presigned URLs
are signed for the public endpoint, which may differ from the one workers use
inside a cluster: a URL naming an internal service host is useless to a client.
These calls block; the gateway runs them in a thread.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shoal.errors import Unavailable
from shoal.jobs import AudioFormat
from shoal.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

AUDIO_PREFIX = "audio/"
# Reference recordings sent inline with a request (shoal.voice_store): they expire too.
INLINE_VOICES_PREFIX = "voices/voice_inline_"


def audio_key(job_id: str, attempt: int, audio_format: AudioFormat) -> str:
    """One object per run, so a run that lost its lease never overwrites the winner's."""
    return f"{AUDIO_PREFIX}{job_id}/{attempt}.{audio_format.value}"


def _unavailable(operation: str, exc: Exception) -> Unavailable:
    return Unavailable(f"storage {operation} failed: {exc}", code="storage_unavailable")


class Storage:
    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket
        self.retention_seconds = settings.retention_seconds
        self._client = self._make_client(settings, settings.s3_endpoint)
        self._public = self._make_client(
            settings, settings.s3_public_endpoint or settings.s3_endpoint
        )

    @staticmethod
    def _make_client(settings: Settings, endpoint: str | None) -> S3Client:
        return boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key,
            aws_secret_access_key=settings.s3_secret_key,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                connect_timeout=5,
                read_timeout=30,
                retries={"max_attempts": 3, "mode": "standard"},
                # Checksums only where S3 requires them: other S3-compatible stores may
                # refuse the newer headers, and each upload costs about 13 % less CPU.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, operation)(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise Unavailable(
                f"storage {operation} failed: {exc}", code="storage_unavailable"
            ) from exc

    def ensure_bucket(self) -> None:
        """Create the bucket if needed, with an expiry rule as a backstop.

        The gateway deletes expired audio on time; the lifecycle rule (whole
        days only) catches whatever that misses, e.g. while no gateway runs.
        """
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise _unavailable("head_bucket", exc) from exc
            self._call("create_bucket", Bucket=self.bucket)
        except BotoCoreError as exc:
            raise _unavailable("head_bucket", exc) from exc
        days = math.ceil(self.retention_seconds / 86_400) + 1
        self._call(
            "put_bucket_lifecycle_configuration",
            Bucket=self.bucket,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": rule,
                        "Status": "Enabled",
                        "Filter": {"Prefix": prefix},
                        "Expiration": {"Days": days},
                    }
                    for rule, prefix in (
                        ("shoal-audio-expiry", AUDIO_PREFIX),
                        ("shoal-inline-voice-expiry", INLINE_VOICES_PREFIX),
                    )
                ]
            },
        )

    def check(self) -> None:
        self._call("head_bucket", Bucket=self.bucket)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._call("put_object", Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        body = self._call("get_object", Bucket=self.bucket, Key=key)["Body"]
        return bytes(body.read())

    def get_optional(self, key: str) -> bytes | None:
        """The object, or None when it does not exist (any other failure raises)."""
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            return bytes(body.read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise _unavailable("get_object", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable("get_object", exc) from exc

    def keys(self, prefix: str) -> list[str]:
        pages = self._client.get_paginator("list_objects_v2")
        try:
            return [
                item["Key"]
                for page in pages.paginate(Bucket=self.bucket, Prefix=prefix)
                for item in page.get("Contents", [])
            ]
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable("list_objects_v2", exc) from exc

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # S3's limit per request
            self._call(
                "delete_objects",
                Bucket=self.bucket,
                Delete={
                    "Objects": [{"Key": key} for key in keys[start : start + 1000]],
                    "Quiet": True,
                },
            )

    def presign(self, key: str, ttl_seconds: int) -> tuple[str, datetime]:
        """A GET URL valid for `ttl_seconds`; signing is local, no request is made."""
        url = self._public.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl_seconds
        )
        return url, datetime.fromtimestamp(int(time.time()) + ttl_seconds, UTC)
