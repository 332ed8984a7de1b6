"""What the app holds for its lifetime: settings, the database engine, S3 clients, Dagster."""

from dataclasses import dataclass, field

import dagster as dg
import sqlalchemy as sa
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
