"""`recordings`: the operators' and developers' command line.

Run it from the project folder (see `project.py`): local state lives under `.local/`, the
configuration in `.env`. Each command group has its module, named after it: `s3.py`, `api.py`,
`db.py`, `tenant.py`, `ingest.py`, `tokens.py`, `pipeline.py` (materialize, retention) and
`demo.py` (seed, demo). Every failure a user can cause ends with a message saying what to do and
a non-zero exit status. Dagster is imported only by the commands that run it, so `--help` stays
fast.
"""

import warnings

import click

from recordings.settings import load_dotenv
from recordings_cli.api import api
from recordings_cli.db import db
from recordings_cli.demo import demo, seed
from recordings_cli.ingest import ingest
from recordings_cli.pipeline import materialize, retention
from recordings_cli.project import env_file
from recordings_cli.s3 import s3
from recordings_cli.tenant import tenant
from recordings_cli.tokens import token


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="daily-conversation-audio-recordings")
def main() -> None:
    """Daily conversation audio recordings: hourly Opus ZIP archives per tenant.

    Configuration comes from the environment (RECORDINGS_* variables) and, for local
    development, from the .env file in the current folder.
    """
    load_dotenv(env_file())
    # BackfillPolicy is beta in Dagster 1.13; the warning is for us, not for operators.
    warnings.filterwarnings("ignore", message="Parameter `backfill_policy`")


for command in (s3, api, db, tenant, ingest, token, seed, materialize, retention, demo):
    main.add_command(command)
