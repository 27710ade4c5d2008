"""Property tests of the API against its own OpenAPI schema (schemathesis): no 5xx, no response that
breaks the schema, on every operation, with valid and invalid data. Bounded: a few examples each."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from infra.queue import ModalDispatcher
from tests.utils.studio import quick_settings
from web.main import create_app

_data = Path(tempfile.mkdtemp(prefix="refrain-schema-"))
app = create_app(
    quick_settings(
        _data / "data", runner="modal", rate_limit="100000/minute", submit_rate_limit="100000/minute"
    )
)
app.state.jobs.dispatcher = ModalDispatcher("refrain", spawn=lambda job_id: None)  # queue, never run

schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path_regex=r"/events$")  # SSE streams
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=8,
    deterministic=True,
    database="none",
)
schema.config.phases.update(phases=["examples", "fuzzing"])


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_matches_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(
        checks=[
            not_a_server_error,
            response_schema_conformance,
            status_code_conformance,
            content_type_conformance,
        ]
    )
