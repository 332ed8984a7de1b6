#!/bin/sh
# Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d):
# one role and one database for Dagster's instance, one for the application. Passwords come
# from the container's environment (docker-compose.yml), psql quotes them (:'...').
# Changing a password later: ALTER ROLE ... PASSWORD ...; this script does not run again.
set -eu
psql --username "$POSTGRES_USER" --dbname postgres -v ON_ERROR_STOP=1 \
    -v dagster_user="$DAGSTER_PG_USERNAME" -v dagster_password="$DAGSTER_PG_PASSWORD" \
    -v dagster_db="$DAGSTER_PG_DB" \
    -v app_user="$APP_DB_USER" -v app_password="$APP_DB_PASSWORD" -v app_db="$APP_DB_NAME" <<'SQL'
CREATE ROLE :"dagster_user" LOGIN PASSWORD :'dagster_password';
CREATE DATABASE :"dagster_db" OWNER :"dagster_user";
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"app_db" OWNER :"app_user";
SQL
