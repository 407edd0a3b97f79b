"""The Flink REST API as the cluster tests use it (scripts/flink.sh serves it on loopback,
port FLINK_REST_PORT, default 8081)."""

import json
import os
import urllib.error
import urllib.request
from typing import Any, Optional

FLINK_REST = f'http://127.0.0.1:{os.environ.get("FLINK_REST_PORT", "8081")}'


def rest(path: str, method: str = 'GET', body: Optional[dict] = None, timeout: float = 10) -> Any:
  """One JSON request; raises urllib.error.HTTPError on a non-2xx answer."""
  data = json.dumps(body).encode() if body is not None else None
  request = urllib.request.Request(
    FLINK_REST + path, data=data, method=method, headers={'Content-Type': 'application/json'}
  )
  with urllib.request.urlopen(request, timeout=timeout) as response:
    raw = response.read()
  return json.loads(raw) if raw else {}


def checkpoint_stats(jid: str) -> Optional[dict]:
  """`/jobs/<jid>/checkpoints`, or None while the job has no checkpoint statistics yet: the
  JobManager answers 500 for a job still CREATED/INITIALIZING or just restarting, which a poll
  must take as "not yet", not as a failure."""
  try:
    return rest(f'/jobs/{jid}/checkpoints')
  except urllib.error.HTTPError as error:
    if error.code >= 500:
      return None
    raise


def completed_checkpoints(jid: str) -> int:
  stats = checkpoint_stats(jid)
  return stats['counts']['completed'] if stats else 0
