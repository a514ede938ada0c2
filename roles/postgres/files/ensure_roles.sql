-- Create or repair drillbook's PostgreSQL roles and the app database.
-- Run by psql as the bootstrap superuser; names and passwords come from the
-- environment (psql 15's \getenv) so they never appear on a command line.
\set ON_ERROR_STOP on
\getenv admin_user DRILLBOOK_PG_ADMIN_USER
\getenv admin_password DRILLBOOK_PG_ADMIN_PASSWORD
\getenv app_user DRILLBOOK_PG_APP_USER
\getenv app_password DRILLBOOK_PG_APP_PASSWORD
\getenv app_db DRILLBOOK_PG_APP_DB

SELECT format('CREATE ROLE %I', :'admin_user')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'admin_user') \gexec
ALTER ROLE :"admin_user" WITH LOGIN SUPERUSER PASSWORD :'admin_password';

SELECT format('CREATE ROLE %I', :'app_user')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_user') \gexec
ALTER ROLE :"app_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_password';

SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'app_user')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'app_db') \gexec
ALTER DATABASE :"app_db" OWNER TO :"app_user";
