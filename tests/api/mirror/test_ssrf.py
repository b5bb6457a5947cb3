"""external_reference: format errors and the SSRF guard, with SSRF_ALLOWED_HOSTS exemptions.

Names are resolved by the test resolver of conftest.py (quay.io, example.com → public
addresses; sneaky.example → 10.1.2.3; unknown names fail like a DNS error).
"""

from __future__ import annotations

import pytest

from tests.api.mirror.conftest import MirrorEnv, assert_error, mirror_body

pytestmark = pytest.mark.anyio

NOT_ALLOWED = "The provided registry location is not allowed"


@pytest.mark.parametrize(
    "reference",
    [
        "169.254.169.254/x",  # cloud metadata
        "169.254.1.1/x",  # link-local
        "10.0.0.1/x",
        "192.168.1.1/x",
        "172.16.0.1/x",
        "172.31.255.255/x",
        "127.0.0.1:5000/x",
        "127.1.2.3/x",
        "0.0.0.0/x",
        "localhost/x",
        "LOCALHOST:5000/x",
        "[::1]/x",
        "[::1]:5000/x",
        "[::ffff:127.0.0.1]/x",
        "[fd00::1]/x",
        "[fe80::1]/x",
        "100.64.0.1/x",  # carrier-grade NAT, not global
        "224.0.0.1/x",
        "foo.internal/x",
        "bar.local/x",
        "metadata/x",
        "metadata.google.internal/x",
        "metadata.azure.internal/x",
        "kubernetes.default.svc/x",
        "kubernetes.default.svc.cluster.local/x",
        "sneaky.example/x",  # resolves to 10.1.2.3
        "mixed.example/x",  # one public and one private answer
    ],
)
async def test_blocked_destinations(env: MirrorEnv, reference: str) -> None:
    assert_error(await env.post(mirror_body(external_reference=reference)), 400, NOT_ALLOWED)
    assert await env.mirror_count() == 0


async def test_blocked_on_put_too(env: MirrorEnv) -> None:
    await env.create_mirror()
    response = await env.put({"external_reference": "169.254.169.254/latest"})
    assert_error(response, 400, NOT_ALLOWED)
    assert (await env.mirror())["external_reference"] == "quay.io/redhat/quay"


@pytest.mark.parametrize(
    "reference",
    [
        "quay.io/redhat/quay",
        "quay.io/nested/path/repo",
        "example.com/foo",
        "registry.example.com:5000/library/nginx",
        "34.1.2.3/x",
        "34.1.2.3:443/x",
    ],
)
async def test_public_destinations_accepted(env: MirrorEnv, reference: str) -> None:
    await env.create_mirror(external_reference=reference)
    assert (await env.mirror())["external_reference"] == reference


@pytest.mark.parametrize("config_overrides", [{"SSRF_ALLOWED_HOSTS": ["127.0.0.0/8"]}])
async def test_allowed_cidr(env: MirrorEnv) -> None:
    await env.create_mirror(external_reference="127.0.0.1:5000/ns/repo")
    assert (await env.mirror())["external_reference"] == "127.0.0.1:5000/ns/repo"
    # Other private ranges stay blocked.
    response = await env.put({"external_reference": "10.0.0.1/x"})
    assert_error(response, 400, NOT_ALLOWED)
    response = await env.put({"external_reference": "localhost:5000/x"})
    assert_error(response, 400, NOT_ALLOWED)


@pytest.mark.parametrize("config_overrides", [{"SSRF_ALLOWED_HOSTS": ["10.1.0.0/16"]}])
async def test_allowed_cidr_matches_resolved_address(env: MirrorEnv) -> None:
    await env.create_mirror(external_reference="sneaky.example/x")
    # mixed.example also answers 10.1.2.3 (allowed) and a public address: accepted.
    assert (await env.put({"external_reference": "mixed.example/x"})).status_code == 201


@pytest.mark.parametrize(
    "config_overrides", [{"SSRF_ALLOWED_HOSTS": ["Mirror.Corp.Example", "LocalHost"]}]
)
@pytest.mark.parametrize(
    "reference", ["mirror.corp.example/x", "MIRROR.corp.example:8443/x", "localhost:5000/ns/repo"]
)
async def test_allowed_hostname_case_insensitive(env: MirrorEnv, reference: str) -> None:
    await env.create_mirror(external_reference=reference)


@pytest.mark.parametrize("config_overrides", [{"SSRF_ALLOWED_HOSTS": ["mirror.corp.example"]}])
async def test_allowed_hostname_does_not_allow_others(env: MirrorEnv) -> None:
    assert_error(
        await env.post(mirror_body(external_reference="sneaky.example/x")), 400, NOT_ALLOWED
    )
    assert_error(await env.post(mirror_body(external_reference="10.20.30.40/x")), 400, NOT_ALLOWED)


@pytest.mark.parametrize(
    ("reference", "text"),
    [
        ("", "External registry reference is required"),
        ("   ", "External registry reference is required"),
        ("quay.io/x y", "External registry reference must not include whitespace"),
        ("quay.io/x\t", "External registry reference must not include whitespace"),
        ("https://quay.io/x", "External registry reference must not include a URL scheme"),
        (
            "https://quay.io/repository/argoproj/argocd",
            "External registry reference must not include a URL scheme",
        ),
        ("quay.io/x?tag=1", "External registry reference contains an invalid character"),
        ("quay.io/x#frag", "External registry reference contains an invalid character"),
        ("quay.io/x%2f", "External registry reference contains an invalid character"),
        ("quay.io\\x/y", "External registry reference contains an invalid character"),
        ("example.com", "External registry reference must include a repository path"),
        ("example.com/", "External registry reference must include a repository path"),
        ("/x", "External registry reference contains an invalid registry authority"),
        ("user@quay.io/x", "External registry reference contains an invalid registry authority"),
        ("example.com:99999/x", "External registry reference contains an invalid registry port"),
        ("example.com:0/x", "External registry reference contains an invalid registry port"),
        ("example.com:abc/x", "External registry reference contains an invalid registry port"),
        ("example.com:/x", "External registry reference contains an invalid registry port"),
        ("bad_host!/x", "External registry reference must include a valid registry hostname"),
        ("-bad.example/x", "External registry reference must include a valid registry hostname"),
        ("nx.example/x", "Cannot resolve hostname 'nx.example'"),
        ("NX.Example/x", "Cannot resolve hostname 'nx.example'"),
    ],
)
async def test_format_errors(env: MirrorEnv, reference: str, text: str) -> None:
    assert_error(await env.post(mirror_body(external_reference=reference)), 400, text)
    assert await env.mirror_count() == 0


async def test_tag_suffix_is_not_rejected(env: MirrorEnv) -> None:
    """Quay treats only the part before the first "/" as the registry (documented quirk)."""
    await env.create_mirror(external_reference="quay.io/redhat/quay:latest")
