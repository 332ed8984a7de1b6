"""What the app holds for its lifetime: settings, the database engine, S3 clients, Dagster."""

from dataclasses import dataclass, field

import dagster as dg
import sqlalchemy as sa
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from minio import Minio

from recordings_api.settings import ApiSettings
from recordings_instance.archives import EvidenceCache


@dataclass
class ApiState:
    settings: ApiSettings
    engine: sa.Engine
    s3: Minio  # internal endpoint: existence checks
    public_s3: Minio  # public endpoint: presigned URLs clients can reach
    instance: dg.DagsterInstance
    evidence_cache: EvidenceCache = field(default_factory=EvidenceCache)


API_STATE = "api"  # the key of the ApiState in the app's state, set by the app's lifespan


def api_state(connection: ASGIConnection) -> ApiState:
    """The app's state, for guards and dependency providers (which see only the request)."""
    return connection.app.state[API_STATE]


def provide_api_state(state: State) -> ApiState:
    """The app's state, as the `api` dependency."""
    return state[API_STATE]
