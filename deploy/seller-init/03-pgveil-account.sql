-- The account pgveil logs into the seller's PostgreSQL with (PGVEIL_UPSTREAM in
-- docker-compose.yml): it reads, and nothing else. Every buyer login of rules/logins.yaml goes
-- through this one account; the masking happens in pgveil, so the account needs SELECT on
-- what any role may query, and no more. The password is for the compose demo only.
CREATE ROLE pgveil_svc LOGIN PASSWORD 'pgveil-svc-demo-only';
GRANT CONNECT ON DATABASE seller TO pgveil_svc;
GRANT USAGE ON SCHEMA public TO pgveil_svc;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO pgveil_svc;
