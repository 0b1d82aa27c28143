-- Queries to copy for a fetchheads snapshot database:
--   sqlite3 -header -column ~/heads.db < queries.sql      (or paste one into Datasette)
-- Tables: runs, snapshots; view: headers (one row per header line). Times are UTC text
-- ('2026-11-25T19:12:17.123Z'), so they sort and compare as strings.

-- Every target whose Server header changed in the last 7 days, with the old and new value.
WITH server AS (
  SELECT s.key, s.target, s.fetched_at,
         (SELECT group_concat(h.value, ', ') FROM headers AS h
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
WHERE previous_at IS NOT NULL AND before IS NOT value
  AND fetched_at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-7 days')
ORDER BY changed_at DESC;

-- Certificates expiring within 30 days, by each target's latest snapshot.
SELECT s.target, json_extract(s.tls, '$.not_after') AS not_after,
       CAST(julianday(json_extract(s.tls, '$.not_after')) - julianday('now') AS INTEGER)
         AS days_left
FROM snapshots AS s
WHERE s.id = (SELECT id FROM snapshots WHERE key = s.key ORDER BY fetched_at DESC, id DESC LIMIT 1)
  AND json_extract(s.tls, '$.not_after') < strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '+30 days')
ORDER BY not_after;

-- Targets failing now, and how: each target's latest snapshot that is not ok.
SELECT s.target, s.error_kind, s.error_message, s.fetched_at
FROM snapshots AS s
WHERE s.id = (SELECT id FROM snapshots WHERE key = s.key ORDER BY fetched_at DESC, id DESC LIMIT 1)
  AND NOT s.ok
ORDER BY s.target;

-- Targets that sent Strict-Transport-Security before but not in their latest snapshot.
SELECT DISTINCT s.target
FROM snapshots AS s
WHERE s.id = (SELECT id FROM snapshots WHERE key = s.key ORDER BY fetched_at DESC, id DESC LIMIT 1)
  AND s.headers IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM headers AS h
                  WHERE h.snapshot_id = s.id AND lower(h.name) = 'strict-transport-security')
  AND EXISTS (SELECT 1 FROM headers AS h
              WHERE h.key = s.key AND lower(h.name) = 'strict-transport-security')
ORDER BY s.target;

-- The last 10 runs: when, how long, how many targets answered, and how each ended (state:
-- running, finished or interrupted; a run killed outright shows as running until a prune).
SELECT id, started_at,
       round((julianday(finished_at) - julianday(started_at)) * 86400, 1) AS seconds,
       targets, ok, failed, changed, warnings, state
FROM runs
ORDER BY id DESC
LIMIT 10;
