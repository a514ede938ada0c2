"""The S3 repository: a bucket (and prefix) through boto3, with the local repository's contract.

Split from repository.py, which keeps the contract, the local directory and the
listing; S3's error mapping and transfers are most of the code and change apart.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from drillbook.backup.errors import RepositoryError
from drillbook.backup.manifest import MANIFEST, Manifest
from drillbook.backup.repository import ID_RE, VERIFIED, Fetched, Progress, Repository
from drillbook.backup.settings import BackupSettings
from drillbook.core.errors import ConfigError

_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "UnrecognizedClientException",
    "403",
}
_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}


class S3Repository(Repository):
    """A bucket (and prefix) reached through boto3; works with AWS and any S3 API (MinIO, moto)."""

    kind = "s3"

    def __init__(self, settings: BackupSettings, work_dir: Path) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        if not settings.s3_bucket:
            raise ConfigError("backup_repository is s3 but backup_s3_bucket is not set")
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix.strip("/")
        self.work_dir = work_dir
        self.extra_args: dict[str, str] = {}
        if settings.s3_sse:
            self.extra_args["ServerSideEncryption"] = settings.s3_sse
            if settings.s3_sse == "aws:kms" and settings.s3_kms_key_id:
                self.extra_args["SSEKMSKeyId"] = settings.s3_kms_key_id
        if settings.s3_storage_class:
            self.extra_args["StorageClass"] = settings.s3_storage_class
        mb = 1024 * 1024
        self.transfer_config = TransferConfig(
            multipart_threshold=settings.s3_multipart_threshold_mb * mb,
            multipart_chunksize=settings.s3_multipart_chunk_mb * mb,
            max_concurrency=settings.s3_max_concurrency,
            use_threads=True,
        )
        with self._errors("create an S3 client"):
            self.client = boto3.session.Session().client(
                "s3",
                region_name=settings.s3_region,
                endpoint_url=settings.s3_endpoint_url,
                config=Config(
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=60,
                    max_pool_connections=max(10, settings.s3_max_concurrency * 2),
                ),
            )

    @property
    def location(self) -> str:
        """``s3://bucket/prefix`` for messages; no trailing slash."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _key(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts]) if self.prefix else "/".join(parts)

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """botocore's exceptions as one :class:`RepositoryError` line saying what could not be done."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            yield
        except NoCredentialsError:
            raise RepositoryError(
                f"{self.location_or_bucket()}: no AWS credentials found (environment, ~/.aws "
                f"or instance role) to {action}"
            ) from None
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchBucket",) or (code == "404" and action.startswith("reach")):
                raise RepositoryError(f"bucket {self.bucket!r} does not exist ({action})") from None
            if code in _DENIED:
                raise RepositoryError(
                    f"{self.location_or_bucket()}: access denied ({code}) trying to {action}; "
                    "check the AWS credentials and the bucket policy"
                ) from None
            raise RepositoryError(f"{self.location_or_bucket()}: cannot {action}: {exc}") from None
        except BotoCoreError as exc:
            raise RepositoryError(f"{self.location_or_bucket()}: cannot {action}: {exc}") from None

    def location_or_bucket(self) -> str:
        """Like :attr:`location`, but safe before ``__init__`` has set bucket and prefix."""
        return f"s3://{getattr(self, 'bucket', '?')}/{getattr(self, 'prefix', '')}".rstrip("/")

    def check(self, *, write: bool = False) -> None:
        """HEAD the bucket; ``write`` is not probed on S3 (a refused PUT surfaces at commit)."""
        with self._errors("reach the bucket"):
            self.client.head_bucket(Bucket=self.bucket)

    def ids(self) -> list[str]:
        """Id-shaped ``<prefix>/<id>/`` folders, manifest or not, sorted (ids sort by age)."""
        found: list[str] = []
        with self._errors("list backups"):
            paginator = self.client.get_paginator("list_objects_v2")
            prefix = self._key("") if self.prefix else ""
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                for cp in page.get("CommonPrefixes", []):
                    name = str(cp["Prefix"])[len(prefix) :].strip("/")
                    if ID_RE.match(name):
                        found.append(name)
        return sorted(found)

    def _get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        with self._errors(f"read {key}"):
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
                return bytes(body.read())
            except ClientError as exc:
                if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING_KEY:
                    return None
                raise

    def _put(self, key: str, data: bytes) -> None:
        with self._errors(f"write {key}"):
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType="application/json", **self.extra_args
            )

    def read_manifest(self, backup_id: str) -> Manifest | None:
        """None when the manifest object is absent; :class:`BackupCorrupt` if present but damaged."""
        data = self._get(self._key(backup_id, MANIFEST))
        return None if data is None else Manifest.from_json(data, where=f"{backup_id}/{MANIFEST}")

    def staging_dir(self, backup_id: str) -> Path:
        """A fresh local temporary directory under the work dir; :meth:`commit` uploads and removes it."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{backup_id}-", dir=self.work_dir))

    def commit(self, manifest: Manifest, staging: Path, progress: Progress | None = None) -> None:
        """Upload the files in parallel, then PUT the manifest alone: the backup appears only when whole."""
        from boto3.s3.transfer import create_transfer_manager

        if progress:
            progress(
                f"uploading {len(manifest.files)} files "
                f"({manifest.total_bytes / 1e6:.1f} MB) to {self.location}"
            )
        with (
            self._errors(f"upload backup {manifest.id}"),
            create_transfer_manager(self.client, self.transfer_config) as manager,
        ):
            futures = [
                manager.upload(
                    str(staging / f.path),
                    self.bucket,
                    self._key(manifest.id, f.path),
                    extra_args=self.extra_args,
                )
                for f in manifest.files
            ]
            for future in futures:
                future.result()
        self._put(self._key(manifest.id, MANIFEST), manifest.to_json().encode())
        shutil.rmtree(staging, ignore_errors=True)

    def abort(self, backup_id: str, staging: Path) -> None:
        """Remove the staging copy and best-effort delete anything uploaded; S3 errors are swallowed."""
        shutil.rmtree(staging, ignore_errors=True)
        with suppress(RepositoryError):
            self._delete_prefix(backup_id)

    def fetch(self, manifest: Manifest, dest_root: Path, progress: Progress | None = None) -> Fetched:
        """Download into a temporary directory (removed on any failure).

        Keys missing in the bucket are skipped, not raised: the integrity check then
        reports them as missing files, which is the finding a drill should show.
        """
        from boto3.s3.transfer import create_transfer_manager
        from botocore.exceptions import ClientError

        dest_root.mkdir(parents=True, exist_ok=True)
        dest = Path(tempfile.mkdtemp(prefix=f"{manifest.id}-", dir=dest_root))
        fetched = Fetched(path=dest, downloaded_bytes=0, temporary=True)
        try:
            with (
                self._errors(f"download backup {manifest.id}"),
                create_transfer_manager(self.client, self.transfer_config) as manager,
            ):
                futures = []
                for f in manifest.files:
                    (dest / f.path).parent.mkdir(parents=True, exist_ok=True)
                    futures.append(
                        (f, manager.download(self.bucket, self._key(manifest.id, f.path), str(dest / f.path)))
                    )
                for entry, future in futures:
                    try:
                        future.result()
                        fetched.downloaded_bytes += entry.size
                    except ClientError as exc:
                        code = str(exc.response.get("Error", {}).get("Code", ""))
                        if code not in _MISSING_KEY:
                            raise
                        # left missing on purpose: the integrity check names it
        except BaseException:
            fetched.cleanup()
            raise
        return fetched

    def _delete_prefix(self, backup_id: str) -> None:
        with self._errors(f"delete backup {backup_id}"):
            paginator = self.client.get_paginator("list_objects_v2")
            keys = [
                obj["Key"]
                for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(backup_id, ""))
                for obj in page.get("Contents", [])
            ]
            for i in range(0, len(keys), 1000):
                self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]], "Quiet": True},
                )

    def delete(self, backup_id: str) -> None:
        """Manifest first (the backup leaves listings at once), then the other keys and the record."""
        with self._errors(f"delete backup {backup_id}"):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(backup_id, MANIFEST))
        self._delete_prefix(backup_id)
        self._delete_record(backup_id)

    def _read_record(self, backup_id: str) -> bytes | None:
        return self._get(self._key(VERIFIED, f"{backup_id}.json"))

    def _write_record(self, backup_id: str, data: bytes) -> None:
        self._put(self._key(VERIFIED, f"{backup_id}.json"), data)

    def _delete_record(self, backup_id: str) -> None:
        with self._errors(f"delete the record of {backup_id}"):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(VERIFIED, f"{backup_id}.json"))
