-- Queries to copy for a fetchheads snapshot database in PostgreSQL (queries.sql: the same for
-- SQLite):   psql "$FETCHHEADS_DB" -f queries-postgres.sql
-- Tables: runs, snapshots; view: headers (one row per header line). Times are timestamptz; the
-- JSON columns are json (headers: [[name, value], ...], in wire order).

-- Every target whose Server header changed in the last 7 days, with the old and new value.
WITH server AS (
  SELECT s.key, s.target, s.fetched_at,
         (SELECT string_agg(h.value, ', ') FROM headers AS h
           WHERE h.snapshot_id = s.id AND lower(h.name) = 'server') AS value
  FROM snapshots AS s
  WHERE s.headers IS NOT NULL
), steps AS (
  SELECT target, fetched_at, value,
         lag(value) OVER (PARTITION BY key ORDER BY fetched_at) AS before,
         lag(fetched_at) OVER (PARTITION BY key ORDER BY fetched_at) AS previous_at
  FROM server
)
SELECT target, before, value AS after, fetched_at AS changed_at
FROM steps
WHERE previous_at IS NOT NULL AND before IS DISTINCT FROM value
  AND fetched_at >= now() - interval '7 days'
ORDER BY changed_at DESC;

-- Certificates expiring within 30 days, by each target's latest snapshot.
WITH latest AS (
  SELECT DISTINCT ON (key) * FROM snapshots ORDER BY key, fetched_at DESC, id DESC
)
SELECT target, (tls ->> 'not_after')::timestamptz AS not_after,
       extract(day FROM (tls ->> 'not_after')::timestamptz - now())::integer AS days_left
FROM latest
WHERE (tls ->> 'not_after')::timestamptz < now() + interval '30 days'
ORDER BY not_after;

-- Targets failing now, and how: each target's latest snapshot that is not ok.
WITH latest AS (
  SELECT DISTINCT ON (key) * FROM snapshots ORDER BY key, fetched_at DESC, id DESC
)
SELECT target, error_kind, error_message, fetched_at
FROM latest
WHERE NOT ok
ORDER BY target;

-- Targets that sent Strict-Transport-Security before but not in their latest snapshot.
WITH latest AS (
  SELECT DISTINCT ON (key) * FROM snapshots ORDER BY key, fetched_at DESC, id DESC
)
SELECT l.target
FROM latest AS l
WHERE l.headers IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM headers AS h
                  WHERE h.snapshot_id = l.id AND lower(h.name) = 'strict-transport-security')
  AND EXISTS (SELECT 1 FROM headers AS h
              WHERE h.key = l.key AND lower(h.name) = 'strict-transport-security')
ORDER BY l.target;

-- The last 10 runs: when, how long, how many targets answered.
SELECT id, started_at,
       round(extract(epoch FROM finished_at - started_at)::numeric, 1) AS seconds,
       targets, ok, failed, changed, warnings
FROM runs
ORDER BY started_at DESC, id DESC
LIMIT 10;

-- A fleet: each machine's latest run, and whether it finished (a pod that was killed did not).
SELECT DISTINCT ON (host) host, started_at, state, targets, ok, failed, changed
FROM runs
ORDER BY host, started_at DESC;
