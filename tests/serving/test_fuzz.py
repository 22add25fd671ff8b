"""Fuzz the started service from its own OpenAPI document (schemathesis): requests that fit the schema and
requests that break it must never get a 5xx.

Strategies come from `APIOperation.as_strategy` rather than schemathesis' pytest plugin: the plugin's lazy
fixture loader reads a pytest-internal attribute that pytest 9 removed.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

EXAMPLES = 25  # per operation and mode: ~300 requests in all, a few seconds


@pytest.fixture(scope="module")
def api_schema(served):
    return schemathesis.openapi.from_url(f"{served.url}/docs.json", headers=served.headers)


@pytest.mark.parametrize("mode", list(GenerationMode))
def test_no_request_gets_a_server_error(api_schema, served, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {"/recommend", "/interests", "/similar_items"} <= {op.path for op in operations}
    if mode is GenerationMode.NEGATIVE:  # the GET probes take no input: nothing to break
        operations = [op for op in operations if op.method.upper() == "POST"]
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case):
            case.call_and_validate(base_url=served.url, headers=served.headers, checks=[not_a_server_error])

        call()
