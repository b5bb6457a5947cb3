"""Run moto's standalone S3 server as a subprocess on 127.0.0.1 for tests."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

HOST = "127.0.0.1"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=1)
    try:
        connection.request("GET", "/moto-api/")
        connection.getresponse().read()
    except OSError:
        return False
    finally:
        connection.close()
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def run_s3_server() -> Iterator[str]:
    """Start ``moto.server`` on a free 127.0.0.1 port; yield its endpoint URL; stop it."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    deadline = time.monotonic() + START_TIMEOUT
    with tempfile.TemporaryFile() as output:
        while time.monotonic() < deadline:
            # Retried only if moto exits early: the free port may be taken before it binds.
            port = _free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
            )
            try:
                while process.poll() is None and time.monotonic() < deadline:
                    if _answers(port):
                        yield f"http://{HOST}:{port}"
                        return
                    time.sleep(0.1)
            finally:
                _stop(process)
        output.seek(0)
        log = output.read().decode(errors="replace")[-4000:]
    raise RuntimeError(f"moto S3 server did not start within {START_TIMEOUT}s:\n{log}")


def reset_s3_server(endpoint: str) -> None:
    """Drop every bucket and object the server holds (moto's reset API)."""
    url = urlsplit(endpoint)
    assert url.hostname == HOST
    assert url.port is not None
    connection = http.client.HTTPConnection(HOST, url.port, timeout=10)
    try:
        connection.request("POST", "/moto-api/reset")
        connection.getresponse().read()
    finally:
        connection.close()


def s3_storage_params(endpoint: str, bucket: str) -> dict[str, Any]:
    """Quay-style ``S3Storage`` parameters for a bucket on the test server."""
    return {
        "s3_bucket": bucket,
        "storage_path": "/registry",
        "s3_access_key": "testing",
        "s3_secret_key": "testing",
        "s3_region": "us-east-1",
        "endpoint_url": endpoint,
        "is_secure": False,
        "create_bucket": True,
    }
