"""The OpenAPI contract: the schema is valid and complete, the docs work offline, and Schemathesis finds no
5xx and no response that breaks the schema, for every operation and every kind of caller."""

from __future__ import annotations

import re

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ..factories import CommitteeFactory, FocalPointFactory, PostFactory, SecretariatFactory, party
from .factories import MatchFactory

pytestmark = pytest.mark.django_db

# Examples per operation and generation mode; each example is sent once per caller (9 callers).
EXAMPLES = 12
EXPECTED_OPERATIONS = {
    ("get", "/api/v1/health/"),
    ("get", "/api/v1/ping/"),
    ("get", "/api/v1/parties/"),
    ("get", "/api/v1/providers/"),
    ("get", "/api/v1/taxonomies/"),
    ("get", "/api/v1/posts/"),
    ("post", "/api/v1/posts/"),
    ("post", "/api/v1/posts/import/"),
    ("get", "/api/v1/posts/removed/"),
    ("get", "/api/v1/posts/{id}/"),
    ("put", "/api/v1/posts/{id}/"),
    ("patch", "/api/v1/posts/{id}/"),
    ("post", "/api/v1/posts/{id}/submit/"),
    ("post", "/api/v1/posts/{id}/recall/"),
    ("post", "/api/v1/posts/{id}/withdraw/"),
    ("post", "/api/v1/posts/{id}/close/"),
    ("get", "/api/v1/posts/{id}/matches/"),
    ("post", "/api/v1/matches/{id}/interest/"),
    ("get", "/api/v1/connections/"),
    ("get", "/api/v1/stocktake/"),
}


def test_schema_lists_every_endpoint_with_errors_and_auth(api):
    schema = api().get("/api/v1/schema/?format=json").json()
    operations = {(method, path) for path, item in schema["paths"].items() for method in item}
    assert operations == EXPECTED_OPERATIONS
    assert schema["components"]["securitySchemes"]["tokenAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "nma_<prefix>_<secret>",
        "description": schema["components"]["securitySchemes"]["tokenAuth"]["description"],
    }
    error = {"$ref": "#/components/schemas/Error"}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            if path not in ("/api/v1/health/", "/api/v1/ping/"):
                assert responses["401"]["content"]["application/json"]["schema"] == error, (method, path)
                assert "429" in responses, (method, path)
            if method in ("post", "put", "patch"):
                assert "400" in responses, (method, path)
            if "{id}" in path:
                assert "404" in responses, (method, path)
    assert "409" in schema["paths"]["/api/v1/posts/{id}/submit/"]["post"]["responses"]
    assert "403" in schema["paths"]["/api/v1/posts/"]["post"]["responses"]
    write = schema["components"]["schemas"]["PostWriteRequest"]["properties"]
    assert {"external_id", "kind", "party", "provider", "title", "support_types", "eligible"} <= set(write)
    # The bounds the server checks are in the contract (Schemathesis sent page_size=0 and got a 400).
    params = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/posts/"]["get"]["parameters"]}
    assert (params["page_size"]["minimum"], params["page_size"]["maximum"]) == (1, 100)
    params = {
        p["name"]: p["schema"] for p in schema["paths"]["/api/v1/posts/{id}/matches/"]["get"]["parameters"]
    }
    assert params["limit"]["minimum"] == 1 and (params["offset"]["minimum"], params["offset"]["maximum"]) == (
        0,
        10**9,
    )
    batch = schema["components"]["schemas"]["PostImportRequest"]["properties"]["items"]
    assert (batch["minItems"], batch["maxItems"]) == (1, 1000)  # as the import checks them
    # An item without external_id is refused: the contract says it is required there (not in a single write).
    item = schema["components"]["schemas"][batch["items"]["$ref"].rsplit("/", 1)[1]]
    assert "external_id" in item["required"] and not item["properties"]["external_id"].get("nullable")
    assert "external_id" not in schema["components"]["schemas"]["PostWriteRequest"].get("required", [])
    # So are the dates a sync may start from.
    params = {p["name"]: p for p in schema["paths"]["/api/v1/posts/"]["get"]["parameters"]}
    assert "years 1970 to 9000" in params["updated_since"]["description"]
    params = {p["name"]: p for p in schema["paths"]["/api/v1/posts/removed/"]["get"]["parameters"]}
    assert "years 1970 to 9000" in params["since"]["description"]
    # The header their answers carry is in the contract too, as a header of the 200, not a request parameter.
    for path in ("/api/v1/posts/{id}/matches/", "/api/v1/posts/removed/"):
        assert "X-Total-Count" in schema["paths"][path]["get"]["responses"]["200"]["headers"]
        assert "X-Total-Count" not in {p["name"] for p in schema["paths"][path]["get"]["parameters"]}


def test_docs_work_offline(api):
    for url in ("/api/v1/docs/", "/api/v1/redoc/"):
        response = api().get(url)
        assert response.status_code == 200
        html = response.content.decode()
        assets = re.findall(r'(?:src|href|spec-url)="([^"]+)"', html)
        assert assets, url
        # Every script and stylesheet comes from our own static files (or, for Swagger's own script, the page
        # itself), never a CDN; no inline script, which the Content-Security-Policy would block.
        assert all(a.startswith("/") and not a.startswith("//") for a in assets), assets
        assert (
            "/api/v1/schema/" in html or "/api/v1/schema/" in api().get(url, {"script": ""}).content.decode()
        )
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), html
        assert '<html lang="en">' in html  # the language of the page's text, for screen readers
    assert '<a href="/"' in api().get("/api/v1/docs/").content.decode()  # a way back to the site
    script = api().get("/api/v1/docs/", {"script": ""})
    assert script.status_code == 200 and "javascript" in script["Content-Type"]
    # A token pasted into the docs is not kept in the site's localStorage, where any script could read it.
    assert re.search(r'"persistAuthorization":\s*false', script.content.decode())


# --- Schemathesis ------------------------------------------------------------------------------------------


@pytest.fixture
def api_schema(db, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            "anon": "100000/minute",
            "token": "100000/minute",
            "user": "100000/minute",
        },
    }
    # Django's test client keeps the test's transaction open across requests; a plain WSGI handler would
    # close the connection at the end of each request, so do what the test client does.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", WSGIHandler())
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES, database="none"
    )
    yield schema
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def callers(db, tokens):
    """Headers of each kind of caller: anonymous, each token scope, and browser sessions with CSRF."""

    def session(user) -> dict:
        client = Client()
        client.force_login(user)
        secret = _get_new_csrf_string()
        return {
            "Cookie": f"sessionid={client.cookies['sessionid'].value}; csrftoken={secret}",
            "X-CSRFToken": secret,
        }

    headers = [{}]
    headers += [
        {"Authorization": f"Bearer {tokens[name]}"}
        for name in ("read", "stocktake", "ken", "bra", "provider")
    ]
    headers.append(session(FocalPointFactory(username="st_fp", party=party("KEN"))))
    headers.append(session(SecretariatFactory(username="st_sec")))
    headers.append(session(CommitteeFactory(username="st_committee")))
    return headers


@pytest.fixture
def known_ids(db, provider):
    """Real objects, so that generated ids sometimes hit one (otherwise nearly every call would be a 404)."""
    posts = [
        PostFactory(),
        PostFactory(status="draft", published_at=None),
        PostFactory(kind="offer", party=None, provider=provider, instruments=["grant"]),
        PostFactory(party=party("BRA")),
    ]
    matches = [MatchFactory(need=posts[0]), MatchFactory()]
    return {"posts": [p.pk for p in posts], "matches": [m.pk for m in matches]}


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_api_conforms_to_its_schema(api_schema, callers, known_ids):
    """Every operation, positive and negative examples, each sent as every caller; failures are collected so
    that one run reports them all."""
    failures = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {(op.method.lower(), op.path) for op in operations} == EXPECTED_OPERATIONS

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
            )
            def run(case):
                _aim_at_real_objects(case, known_ids)
                for headers in callers:
                    case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                continue  # nothing to make invalid (e.g. no parameters and no body)
            except KeyboardInterrupt:
                raise
            except BaseException as error:  # Schemathesis reports its failures as an exception group
                failures.append(f"{mode.value} {operation.label}: {error}")
    assert not failures, "\n\n".join(failures)


def _aim_at_real_objects(case, known_ids) -> None:
    """Half the examples aim at real objects; the others keep the generated id (unknown, huge, invalid)."""
    generated = (case.path_parameters or {}).get("id")
    if isinstance(generated, int) and not isinstance(generated, bool) and generated % 2 == 0:
        pool = known_ids["matches"] if case.path.startswith("/api/v1/matches/") else known_ids["posts"]
        case.path_parameters["id"] = pool[generated // 2 % len(pool)]


def test_the_docs_colours_give_white_text_enough_contrast(client):
    """Swagger UI's method badges and buttons put white text on light greens and blues (1.6:1 to 2.3:1): the
    page darkens them, each to WCAG's 4.5:1 against white (the badges' text) or on the page's #fafafa."""
    import re

    html = client.get("/api/v1/docs/").content.decode()
    style = html.split("<style>")[1].split("</style>")[0]
    colours = re.findall(
        r"\.swagger-ui [^{]*\{[^}]*(?:background|color|border-color|fill): (#[0-9a-f]{6})", style
    )
    assert len(colours) >= 8

    def luminance(hex_colour: str) -> float:
        channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    for colour in colours:
        ratio = (1.05) / (luminance(colour) + 0.05)
        assert ratio >= 4.5, (colour, round(ratio, 2))
