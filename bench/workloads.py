"""The measured client workloads: one big blob over HTTP, and a dataset of images via skopeo.

Both registries see byte-identical requests: the same files, the same clients, the same flow.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench.dataset import Dataset, Ref

# Every external command gets a deadline, so a stuck server can never hang the benchmark.
BIG_TIMEOUT = 900.0
SKOPEO_TIMEOUT = 600.0


class WorkloadError(RuntimeError):
    pass


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.authority}"


def _request(
    endpoint: Endpoint, method: str, target: str, headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=120)
    conn.request(method, target, headers={"Content-Length": "0", **(headers or {})})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def _target(location: str) -> str:
    """A Location header (absolute or relative) as a request target on the same server."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _with_query(target: str, key: str, value: str) -> str:
    return f"{target}{'&' if '?' in target else '?'}{key}={value}"


def _expect(response: http.client.HTTPResponse, status: int, what: str) -> None:
    if response.status != status:
        raise WorkloadError(f"{what}: HTTP {response.status} {response.reason}, wanted {status}")


def push_blob(endpoint: Endpoint, repo: str, path: Path, digest: str) -> float:
    """Upload ``path`` as containers/image (skopeo, podman, buildah) does; return seconds.

    POST starts a session, one PATCH streams the whole body with its Content-Length, and a
    PUT with ``?digest=`` and no body completes it. The PATCH is sent by curl, which streams
    from the file with constant memory (no ``Expect: 100-continue``, as Go's client).
    """
    started = time.perf_counter()
    response = _request(endpoint, "POST", f"/v2/{repo}/blobs/uploads/")
    _expect(response, 202, "POST upload")
    location = _target(response.headers["Location"])
    out = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--fail",
            "--include",
            "--output",
            "-",
            "--request",
            "PATCH",
            "--upload-file",
            str(path),
            "--header",
            "Content-Type: application/octet-stream",
            "--header",
            "Expect:",
            "--max-time",
            str(int(BIG_TIMEOUT)),
            endpoint.url + location,
        ],
        capture_output=True,
        check=False,
        timeout=BIG_TIMEOUT + 30,
    )
    if out.returncode != 0:
        raise WorkloadError(f"PATCH upload failed: {out.stderr.decode(errors='replace')}")
    headers = _parse_headers(out.stdout.decode("latin-1"))
    if "location" not in headers:
        raise WorkloadError(f"PATCH upload returned no Location: {out.stdout[:500]!r}")
    location = _target(headers["location"])
    response = _request(endpoint, "PUT", _with_query(location, "digest", digest))
    _expect(response, 201, "PUT upload")
    return time.perf_counter() - started


def _parse_headers(raw: str) -> dict[str, str]:
    # With --include the last header block (after any interim 1xx responses) is the final one.
    blocks = [block for block in raw.split("\r\n\r\n") if block.startswith("HTTP/")]
    headers: dict[str, str] = {}
    for line in (blocks[-1] if blocks else "").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def pull_blob(endpoint: Endpoint, repo: str, digest: str, size: int) -> float:
    """GET the blob into /dev/null with curl; return seconds. Checks the byte count."""
    started = time.perf_counter()
    out = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--fail",
            "--output",
            "/dev/null",
            "--write-out",
            "%{size_download}",
            "--max-time",
            str(int(BIG_TIMEOUT)),
            f"{endpoint.url}/v2/{repo}/blobs/{digest}",
        ],
        capture_output=True,
        check=False,
        timeout=BIG_TIMEOUT + 30,
    )
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise WorkloadError(f"GET blob failed: {out.stderr.decode(errors='replace')}")
    if int(out.stdout.decode().strip() or 0) != size:
        raise WorkloadError(f"GET blob returned {out.stdout!r} bytes, wanted {size}")
    return elapsed


def _skopeo(args: list[str]) -> None:
    out = subprocess.run(
        ["skopeo", "--command-timeout", f"{int(SKOPEO_TIMEOUT)}s", *args],
        capture_output=True,
        check=False,
        timeout=SKOPEO_TIMEOUT + 30,
    )
    if out.returncode != 0:
        raise WorkloadError(
            f"skopeo {' '.join(args)} failed: {out.stderr.decode(errors='replace')[-2000:]}"
        )


def warm_up(endpoint: Endpoint, dataset: Dataset, into: Path) -> None:
    """Exercise every code path once (unmeasured), as on a server that has been running.

    A fresh Python server pays one-off costs on its first requests (lazy imports, SQL
    statement compilation caches); a long-running registry has paid them long ago.
    """
    small = dataset.warmup_layer
    push_blob(endpoint, "bench/warmup-blob", small.path, small.digest)
    pull_blob(endpoint, "bench/warmup-blob", small.digest, small.size)
    push_dataset(endpoint, dataset, (dataset.warmup,))
    pull_dataset(endpoint, dataset, into, (dataset.warmup,))


def push_dataset(endpoint: Endpoint, dataset: Dataset, refs: tuple[Ref, ...] = ()) -> float:
    """``skopeo copy --all`` every tag of the OCI layout into the registry, one after another."""
    started = time.perf_counter()
    for ref in refs or dataset.refs:
        _skopeo(
            [
                "copy",
                "--quiet",
                "--all",
                "--dest-tls-verify=false",
                f"oci:{dataset.layout}:{ref.layout_tag}",
                f"docker://{endpoint.authority}/{ref.repository}:{ref.tag}",
            ]
        )
    return time.perf_counter() - started


def pull_dataset(
    endpoint: Endpoint, dataset: Dataset, into: Path, refs: tuple[Ref, ...] = ()
) -> float:
    """``skopeo copy --all`` every tag back from the registry into a fresh OCI layout."""
    into = into / f"pull-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    for ref in refs or dataset.refs:
        _skopeo(
            [
                "copy",
                "--quiet",
                "--all",
                "--src-tls-verify=false",
                f"docker://{endpoint.authority}/{ref.repository}:{ref.tag}",
                f"oci:{into}:{ref.layout_tag}",
            ]
        )
    elapsed = time.perf_counter() - started
    shutil.rmtree(into, ignore_errors=True)
    return elapsed
