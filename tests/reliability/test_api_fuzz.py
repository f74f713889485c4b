"""Schemathesis against /api/schema/ with a finance token: every operation and parameter.

Properties: no server error (5xx) and every response conforms to the schema (status code
documented, content type and body match). The schema is fetched from the app itself, so
endpoints added later are fuzzed too. Bounded for `make test` (COSTAPP_FUZZ_EXAMPLES per
operation, default 15); RELIABILITY.md has the figures of a longer run.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

# The two properties: no server error; status, content type, headers and body as the
# schema documents them. (Not "every schema-valid value is accepted": the schema types filters
# as free strings, and the API rightly answers 400 naming the parameter for unknown values.)
BASE_CHECKS = [checks.not_a_server_error, checks.content_type_conformance,
          checks.response_headers_conformance, checks.response_schema_conformance]
# Error answers (400/401/403/404) are documented for every operation by costapp.schema.
STATUS_CHECKS = [*BASE_CHECKS, checks.status_code_conformance]
EXAMPLES = int(os.environ.get("COSTAPP_FUZZ_EXAMPLES", "15"))
END = datetime(2026, 3, 4, tzinfo=UTC)


@pytest.fixture
def api(live_server):
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from costapp import demo, services

    cluster = demo.ensure_world()
    services.simulate_history(cluster, 1, end=END, step_seconds=3600, scale=0.3)
    services.allocate_dirty_days(cluster.pk)
    token = Token.objects.create(user=User.objects.get(username="finance")).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    resp = client.get("/api/schema/", {"format": "json"})
    assert resp.status_code == 200
    return schemathesis.openapi.from_dict(resp.json()), live_server.url, token


def test_every_api_operation_survives_fuzzing_and_matches_its_schema(api):
    schema, base_url, token = api
    check_list = STATUS_CHECKS
    failures, counted = [], {}
    for result in schema.get_all_operations():
        operation = result.ok()
        key = f"{operation.method.upper()} {operation.path}"
        counted[key] = 0

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def fuzz(case):
            key = f"{case.method.upper()} {case.path}"
            counted[key] += 1
            try:
                response = case.call(base_url=base_url,
                                     headers={"Authorization": f"Token {token}"})
                case.validate_response(response, checks=check_list)
            except (Exception, BaseExceptionGroup) as exc:  # collected, reported together
                kinds = [ln.strip() for ln in str(exc).splitlines() if ln.strip().startswith("- ")]
                failures.append((key, tuple(kinds) or (type(exc).__name__,), case.query))

        fuzz()
    print(f"\nschemathesis: {len(counted)} operations, {sum(counted.values())} cases, "
          f"{len(failures)} failing cases")
    assert len(counted) >= 5, counted
    distinct = sorted({(key, kinds) for key, kinds, _ in failures})
    examples = {(k, kinds): q for k, kinds, q in failures}
    assert not distinct, "\n".join(f"{k} {kinds} e.g. {examples[(k, kinds)]}"
                                    for k, kinds in distinct)
