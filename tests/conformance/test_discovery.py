"""OCI Distribution Spec v1.1 conformance: content discovery (end-8a/b, end-12a/b, _catalog)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conformance.spec import (
    ABSENT_DIGEST,
    Content,
    artifact,
    assert_error,
    index,
    oci_image,
    push,
    put_manifest,
    upload,
)
from tests.support.images import OCI_INDEX, OCI_MANIFEST

pytestmark = pytest.mark.anyio

REPO = "conformance/discovery"
# Mixed case, digits and punctuation: ASCII order differs from most locale collations here.
TAGS = ["b", "A", "a", "_x", "1.0", "10", "9", "Z9", "v1-0", "v1.0", "v1_0", "B"]
LINK_RE = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


@pytest.fixture
async def tagged(client: httpx.AsyncClient) -> list[str]:
    image = oci_image()
    await push(client, REPO, image, TAGS[0])
    for tag in TAGS[1:]:
        response = await put_manifest(client, REPO, image, tag)
        assert response.status_code == 201
    return sorted(TAGS)


def _next(response: httpx.Response) -> str | None:
    link = response.headers.get("Link")
    if link is None:
        return None
    match = LINK_RE.match(link)
    assert match, link
    return match["url"]


# --- tags ---------------------------------------------------------------------------------------


async def test_tags_are_listed_in_ascii_order(client: httpx.AsyncClient, tagged: list[str]) -> None:
    response = await client.get(f"/v2/{REPO}/tags/list")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"name": REPO, "tags": tagged}
    assert "Link" not in response.headers


@pytest.mark.parametrize("n", [1, 3, 5, 11])
async def test_tag_pagination_follows_link(
    client: httpx.AsyncClient, tagged: list[str], n: int
) -> None:
    seen: list[str] = []
    url: str | None = f"/v2/{REPO}/tags/list?n={n}"
    pages = 0
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200
        page = response.json()["tags"]
        assert len(page) <= n
        url = _next(response)
        if url is not None:
            assert len(page) == n
            query = parse_qs(urlsplit(url).query)
            assert query["n"] == [str(n)]
            assert query["last"] == [page[-1]]
            assert urlsplit(url).path == f"/v2/{REPO}/tags/list"
        seen.extend(page)
        pages += 1
    assert seen == tagged
    assert pages == -(-len(tagged) // n)


async def test_tags_n_and_last(client: httpx.AsyncClient, tagged: list[str]) -> None:
    response = await client.get(f"/v2/{REPO}/tags/list", params={"n": 3, "last": tagged[2]})
    assert response.json()["tags"] == tagged[3:6]
    only_last = await client.get(f"/v2/{REPO}/tags/list", params={"last": tagged[2]})
    assert only_last.json()["tags"] == tagged[3:]
    # ``last`` need not be an existing tag: listing resumes after it in the same order.
    between = await client.get(f"/v2/{REPO}/tags/list", params={"last": "Y"})
    assert between.json()["tags"] == [t for t in tagged if t > "Y"]
    past_end = await client.get(f"/v2/{REPO}/tags/list", params={"n": 3, "last": "~"})
    assert past_end.json()["tags"] == []
    assert "Link" not in past_end.headers


async def test_tags_n_zero_is_empty_without_link(
    client: httpx.AsyncClient, tagged: list[str]
) -> None:
    response = await client.get(f"/v2/{REPO}/tags/list", params={"n": 0})
    assert response.status_code == 200
    assert response.json() == {"name": REPO, "tags": []}
    assert "Link" not in response.headers


async def test_tags_n_larger_than_count(client: httpx.AsyncClient, tagged: list[str]) -> None:
    response = await client.get(f"/v2/{REPO}/tags/list", params={"n": len(tagged)})
    assert response.json()["tags"] == tagged
    assert "Link" not in response.headers
    more = await client.get(f"/v2/{REPO}/tags/list", params={"n": 1000})
    assert more.json()["tags"] == tagged


async def test_tags_of_repository_without_tags(client: httpx.AsyncClient) -> None:
    await upload(client, REPO, b"only a blob")
    response = await client.get(f"/v2/{REPO}/tags/list")
    assert response.status_code == 200
    assert response.json() == {"name": REPO, "tags": []}


@pytest.mark.parametrize("n", ["-1", "many"])
async def test_tags_invalid_n_is_400(client: httpx.AsyncClient, tagged: list[str], n: str) -> None:
    assert_error(await client.get(f"/v2/{REPO}/tags/list", params={"n": n}), 400)


# --- _catalog -----------------------------------------------------------------------------------

REPOSITORIES = ["cat/b", "cat/a", "dog/a", "cat/c.d", "cat/c_d", "ant/z"]


@pytest.fixture
async def repositories(client: httpx.AsyncClient) -> list[str]:
    for name in REPOSITORIES:
        await upload(client, name, name.encode())
    return sorted(REPOSITORIES)


async def test_catalog(client: httpx.AsyncClient, repositories: list[str]) -> None:
    response = await client.get("/v2/_catalog")
    assert response.status_code == 200
    assert response.json() == {"repositories": repositories}


async def test_catalog_pagination(client: httpx.AsyncClient, repositories: list[str]) -> None:
    seen: list[str] = []
    url: str | None = "/v2/_catalog?n=4"
    while url is not None:
        response = await client.get(url)
        page = response.json()["repositories"]
        url = _next(response)
        if url is not None:
            assert len(page) == 4
            assert urlsplit(url).path == "/v2/_catalog"
        seen.extend(page)
    assert seen == repositories


async def test_catalog_n_zero(client: httpx.AsyncClient, repositories: list[str]) -> None:
    response = await client.get("/v2/_catalog", params={"n": 0})
    assert response.status_code == 200
    assert response.json() == {"repositories": []}
    assert "Link" not in response.headers


async def test_catalog_last(client: httpx.AsyncClient, repositories: list[str]) -> None:
    response = await client.get("/v2/_catalog", params={"n": 2, "last": "cat/b"})
    assert response.json()["repositories"] == ["cat/c.d", "cat/c_d"]


# --- referrers ----------------------------------------------------------------------------------

SBOM = "application/vnd.example.sbom.v1"
SIGNATURE = "application/vnd.example.signature.v1"
CONFIG_TYPE = "application/vnd.example.config.v1+json"


def _expected(content: Content, artifact_type: str | None, note: str | None) -> dict[str, object]:
    out: dict[str, object] = {
        "mediaType": content.media_type,
        "digest": content.digest,
        "size": len(content.manifest),
    }
    if artifact_type is not None:
        out["artifactType"] = artifact_type
    if note is not None:
        out["annotations"] = {"org.example.note": note}
    return out


@pytest.fixture
async def subject(client: httpx.AsyncClient) -> tuple[Content, list[dict[str, object]]]:
    """A subject image with five referrers of different shapes, and their expected descriptors."""
    image = oci_image()
    await push(client, REPO, image, "v1")
    sbom = artifact(image, SBOM, {"org.example.note": "sbom"})
    sig = artifact(image, SIGNATURE, {"org.example.note": "sig"})
    # No artifactType: the descriptor reports the config media type (OCI 1.1).
    config_typed = artifact(image, None, {"org.example.note": "cfg"}, config_type=CONFIG_TYPE)
    empty_type = artifact(image, "", None, config_type=CONFIG_TYPE)
    child = oci_image()
    await push(client, REPO, child, child.digest)
    typed_index = index([child], subject=image.descriptor(), artifactType=SBOM)
    untyped_index = index(
        [child], subject=image.descriptor(), annotations={"org.example.note": "i"}
    )
    for referrer in (sbom, sig, config_typed, empty_type, typed_index, untyped_index):
        await push(client, REPO, referrer, referrer.digest)
    expected = [
        _expected(sbom, SBOM, "sbom"),
        _expected(sig, SIGNATURE, "sig"),
        _expected(config_typed, CONFIG_TYPE, "cfg"),
        _expected(empty_type, CONFIG_TYPE, None),
        _expected(typed_index, SBOM, None),
        _expected(untyped_index, None, "i"),
    ]
    return image, expected


def _key(descriptor: dict[str, object]) -> str:
    return str(descriptor["digest"])


async def test_referrers(
    client: httpx.AsyncClient, subject: tuple[Content, list[dict[str, object]]]
) -> None:
    image, expected = subject
    response = await client.get(f"/v2/{REPO}/referrers/{image.digest}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in response.headers
    body = response.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    assert sorted(body["manifests"], key=_key) == sorted(expected, key=_key)


async def test_referrers_filtered_by_artifact_type(
    client: httpx.AsyncClient, subject: tuple[Content, list[dict[str, object]]]
) -> None:
    image, expected = subject
    response = await client.get(
        f"/v2/{REPO}/referrers/{image.digest}", params={"artifactType": SBOM}
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    wanted = [d for d in expected if d.get("artifactType") == SBOM]
    assert len(wanted) == 2
    assert sorted(response.json()["manifests"], key=_key) == sorted(wanted, key=_key)
    by_config = await client.get(
        f"/v2/{REPO}/referrers/{image.digest}", params={"artifactType": CONFIG_TYPE}
    )
    assert len(by_config.json()["manifests"]) == 2
    none = await client.get(
        f"/v2/{REPO}/referrers/{image.digest}", params={"artifactType": "application/x.none"}
    )
    assert none.json()["manifests"] == []
    assert none.headers["OCI-Filters-Applied"] == "artifactType"


async def test_referrers_of_unknown_subject_is_empty(
    client: httpx.AsyncClient, subject: tuple[Content, list[dict[str, object]]]
) -> None:
    response = await client.get(f"/v2/{REPO}/referrers/{ABSENT_DIGEST}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


async def test_referrers_in_unknown_repository_is_empty(client: httpx.AsyncClient) -> None:
    """A registry with the referrers API MUST NOT answer 404 (clients would fall back to tags)."""
    response = await client.get(f"/v2/conformance/never-pushed/referrers/{ABSENT_DIGEST}")
    assert response.status_code == 200
    assert response.json()["manifests"] == []


async def test_referrers_are_per_repository(
    client: httpx.AsyncClient, subject: tuple[Content, list[dict[str, object]]]
) -> None:
    image, _ = subject
    await upload(client, "conformance/other", b"x")
    response = await client.get(f"/v2/conformance/other/referrers/{image.digest}")
    assert response.json()["manifests"] == []


async def test_referrers_invalid_digest_is_400(client: httpx.AsyncClient) -> None:
    await upload(client, REPO, b"x")
    assert_error(await client.get(f"/v2/{REPO}/referrers/sha256:nope"), 400, "DIGEST_INVALID")


async def test_deleted_referrer_is_no_longer_listed(
    client: httpx.AsyncClient, subject: tuple[Content, list[dict[str, object]]]
) -> None:
    image, expected = subject
    gone = str(expected[0]["digest"])
    assert (await client.delete(f"/v2/{REPO}/manifests/{gone}")).status_code == 202
    response = await client.get(f"/v2/{REPO}/referrers/{image.digest}")
    assert gone not in [d["digest"] for d in response.json()["manifests"]]
    assert len(response.json()["manifests"]) == len(expected) - 1
    assert OCI_MANIFEST in {d["mediaType"] for d in response.json()["manifests"]}
