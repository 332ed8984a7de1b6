"""Property-based fuzzing of the API from its own OpenAPI schema (schemathesis).

A real uvicorn process serves the app over a real database, S3 server and Dagster instance
holding an archived hour. Every operation is called with generated valid and invalid inputs
(with a tenant token on tenant operations, a host token on host operations); every response
must be a documented status, with the documented content type, headers and body, and none may
be a 5xx. (Unknown query parameters are ignored, as HTTP APIs conventionally do, so
schemathesis's strict "reject anything outside the schema" check is not applied.)
"""

import io
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from minio import Minio
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from recordings.catalog import ensure_tenant, set_recording_settings
from recordings.db.engine import create_db_engine, session_scope
from recordings.keys import archive_key, archive_partition_key, day_hours
from recordings.tokens import (
    HOST_PERMISSION,
    READ_PERMISSION,
    WEBHOOK_PERMISSION,
    mint_development_token,
)
from recordings_cli.local_api import LocalApiServer, free_port
from recordings_instance.archives import archive_asset_key
from tests.api.conftest import JWT_SECRET
from tests.support import DAY

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.resilience]

LINK_KEYS = "k1:" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="  # 32 bytes, test only
EXAMPLES = 40  # per operation and mode: 23 operations x 2 modes x 40 = 1840 requests
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_server(
    recordings_env: dict[str, str],
    database_url: str,
    s3_client: Minio,
    dagster_home: Path,
    tmp_path: Path,
) -> Iterator[LocalApiServer]:
    engine = create_db_engine(database_url)
    with session_scope(engine) as session:
        for tenant in ("acme", "globex"):
            ensure_tenant(session, tenant)
            set_recording_settings(session, tenant, changed_by="test", enabled=True)
    engine.dispose()
    hour = day_hours(DAY)[4]
    key = archive_key("acme", hour)
    s3_client.put_object(recordings_env["RECORDINGS_ARCHIVE_BUCKET"], key, io.BytesIO(b"PK"), 2)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                archive_asset_key("acme"),
                partition=archive_partition_key("acme", hour),
                metadata={
                    "object_key": key,
                    "size_bytes": 2,
                    "sha256": "0" * 64,
                    "recording_count": 0,
                    "conversation_count": 0,
                    "failed_recording_count": 0,
                },
            )
        )
    env = {
        **recordings_env,
        "RECORDINGS_JWT_DEV_SECRET": JWT_SECRET,
        "RECORDINGS_LINK_KEYS": LINK_KEYS,
        "DAGSTER_HOME": str(dagster_home),
    }
    with LocalApiServer(port=free_port(), env=env, log_path=tmp_path / "api.log") as server:
        yield server


def _token(path: str) -> str:
    if "/host/" in path:
        return mint_development_token(
            JWT_SECRET, subject="fuzz-host", tenant_id=None, permissions=[HOST_PERMISSION]
        )
    return mint_development_token(
        JWT_SECRET,
        subject="fuzz-tenant",
        tenant_id="acme",
        permissions=[READ_PERMISSION, WEBHOOK_PERMISSION],
    )


def _fuzz(operation: schemathesis.APIOperation, mode: GenerationMode, url: str) -> bool:
    """Run `EXAMPLES` generated calls; False when the mode has no input to generate (no
    parameters to make invalid)."""
    headers = {"Authorization": f"Bearer {_token(operation.path)}"} if operation.security else {}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=url, headers=headers)
        where = f"{case.method} {case.formatted_path} {case.query}"
        assert response.status_code < 500, f"{where}: {response.status_code} {response.text}"
        case.validate_response(response, checks=CONFORMANCE)

    try:
        check()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        return False
    return True


def test_no_operation_breaks_its_schema_or_errors(api_server: LocalApiServer) -> None:
    schema = schemathesis.openapi.from_url(f"{api_server.url}/schema/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 23
    negative = 0
    for operation in operations:
        assert _fuzz(operation, GenerationMode.POSITIVE, api_server.url)
        negative += _fuzz(operation, GenerationMode.NEGATIVE, api_server.url)
    assert negative >= 7  # every operation with a parameter or a body
