"""The OpenAPI schema is valid OpenAPI 3.1 and documents every route, with examples."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from api.main import create_app

ROUTES = {
    ("get", "/health"), ("get", "/tracks"), ("post", "/tracks"), ("get", "/tracks/{track_id}"),
    ("delete", "/tracks/{track_id}"), ("get", "/tracks/{track_id}/audio"),
    ("get", "/tracks/{track_id}/similar"), ("get", "/artists"), ("get", "/artists/{artist_id}"),
    ("get", "/artists/{artist_id}/similar"), ("get", "/singers/map"),
    ("post", "/search/example"), ("post", "/search/similar-singers"), ("post", "/search/hum"),
    ("post", "/search/tags"), ("get", "/tags"),
}


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    """The schema of an app over an empty catalog: documenting needs no data."""
    from recsys.settings import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("openapi-data"))
    with TestClient(create_app(settings)) as c:
        return c.get("/openapi.json").json()


def test_schema_is_valid_openapi(spec):
    validate(spec)


def test_every_route_is_documented(spec):
    found = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    assert ROUTES <= found
    for method, path in ROUTES:
        op = spec["paths"][path][method]
        assert op.get("summary"), (method, path)
        assert op.get("tags"), (method, path)
        assert "200" in op["responses"] or "201" in op["responses"]


def test_errors_and_writes_are_documented(spec):
    schemas = spec["components"]["schemas"]
    assert schemas["ErrorResponse"]["examples"]
    for path in ("/tracks/{track_id}", "/search/tags"):
        op = spec["paths"][path]["delete" if path.startswith("/tracks") else "post"]
        assert {"400", "404", "422"} <= set(op["responses"])
    delete = spec["paths"]["/tracks/{track_id}"]["delete"]
    assert {"401", "403"} <= set(delete["responses"])
    header = [p for p in delete["parameters"] if p["in"] == "header"]
    assert header and header[0]["name"] == "X-API-Key"
    assert "413" in spec["paths"]["/search/example"]["post"]["responses"]


def test_requests_and_answers_carry_examples(spec):
    schemas = spec["components"]["schemas"]
    for name in ("SearchResponse", "TagSearchRequest", "Page", "TagsResponse", "SingerMap",
                 "UploadResponse", "Health"):
        assert schemas[name].get("examples"), name
    tag_search = schemas["TagSearchRequest"]
    assert "not" in tag_search["properties"]  # the JSON field is "not", not "not_"
