-- The first seed's abandon-rate job as native Flink SQL, corrected (docs/benchmarks.md):
-- event time is TO_TIMESTAMP_LTZ over the payload's epoch-ms `timestamp` (the seed put TUMBLE
-- over the BIGINT itself), a 10 s bounded out-of-orderness watermark, re-deliveries counted once
-- (COUNT(DISTINCT call_uuid)), and the rate divided before the DECIMAL(5,4) cast (the seed cast
-- the abandoned count first, which overflows at 10 abandoned calls).
-- scripts/bench/flink_sql.py fills in the dollar placeholders (string.Template) and runs it with
-- bin/sql-client.sh -f on the cluster of scripts/flink.sh.
SET 'pipeline.name' = '${job_name}';
SET 'parallelism.default' = '${parallelism}';
SET 'table.local-time-zone' = 'UTC';
-- the same checkpointing as the Beam job (scripts/submit_flink.sh); state in RocksDB as the
-- Beam job's unless the benchmark asks for the heap (hashmap)
SET 'execution.checkpointing.interval' = '${checkpoint_ms}ms';
SET 'execution.checkpointing.mode' = 'EXACTLY_ONCE';
SET 'state.backend.type' = '${state_backend}';

CREATE TABLE call_events (
  call_uuid STRING,
  event_type STRING,
  `timestamp` BIGINT,
  queue_id STRING,
  abandoned BOOLEAN,
  wait_time_seconds INT,
  agent_id STRING,
  -- A record without a timestamp in [2000, 2100) gets epoch 0: the rowtime must never be null
  -- ("RowTime field should not be null" fails the job), and one far-future timestamp would move
  -- the watermark past every window. Epoch 0 never advances the watermark; WHERE drops it.
  event_time AS TO_TIMESTAMP_LTZ(
    CASE WHEN `timestamp` >= 946684800000 AND `timestamp` < 4102444800000
         THEN `timestamp` ELSE 0 END, 3),
  WATERMARK FOR event_time AS event_time - INTERVAL '10' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '${topic}',
  'properties.bootstrap.servers' = '${bootstrap}',
  'properties.group.id' = '${job_name}',
  'scan.startup.mode' = 'earliest-offset',
  -- read the backlog there is when the job starts, then finish: the end of input moves the
  -- watermark to the end of time, so every window fires, and FINISHED marks all processed
  'scan.bounded.mode' = 'latest-offset',
  'format' = 'json',
  -- a line that is not a JSON object is skipped, a field of the wrong type reads null
  'json.ignore-parse-errors' = 'true'
);

CREATE TABLE abandon_metrics (
  queue_id STRING,
  window_start TIMESTAMP_LTZ(3),
  window_end TIMESTAMP_LTZ(3),
  total_calls BIGINT,
  abandoned_calls BIGINT,
  abandon_rate DECIMAL(5, 4)
) WITH (
  ${sink_options}
);

INSERT INTO abandon_metrics
SELECT
  queue_id,
  TUMBLE_START(event_time, INTERVAL '${window_s}' SECOND) AS window_start,
  TUMBLE_END(event_time, INTERVAL '${window_s}' SECOND) AS window_end,
  COUNT(DISTINCT call_uuid) AS total_calls,
  COUNT(DISTINCT CASE WHEN abandoned THEN call_uuid END) AS abandoned_calls,
  CAST(CAST(COUNT(DISTINCT CASE WHEN abandoned THEN call_uuid END) AS DOUBLE)
       / COUNT(DISTINCT call_uuid) AS DECIMAL(5, 4)) AS abandon_rate
FROM call_events
WHERE event_type = 'CALL_ENDED'
  AND call_uuid IS NOT NULL AND call_uuid <> ''
  AND queue_id IS NOT NULL AND queue_id <> ''
  AND abandoned IS NOT NULL
  AND `timestamp` >= 946684800000 AND `timestamp` < 4102444800000
GROUP BY queue_id, TUMBLE(event_time, INTERVAL '${window_s}' SECOND);
