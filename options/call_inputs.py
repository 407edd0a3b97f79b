"""Values of the call-metrics options that need more than a type: the
channel filter, the Genesys trigger topic, the queue-name file and the
agents' queue-membership file.

Each turns one option into a checked, immutable value once, before the
graph is built (options/config.py), and raises ValueError with a message
naming the option and what was wrong.
"""

import csv
import json
import re
import types
from typing import Dict, FrozenSet, Mapping, Optional, Tuple

from options.call_metrics_options import CHANNELS

# A trigger's topic as its configuration names it (`{id}` or a real id).
_TRIGGER_TOPIC = re.compile(r'v2\.detail\.events\.conversation\.[^.]+\.(acd\.start|acd\.end)')
# Names longer than this are no queue names (they end up on every row).
MAX_QUEUE_NAME_CHARS = 256
# A queue-name file is a configuration export, not data: refuse a file that
# would hold far more queues than any contact center has.
MAX_QUEUE_NAMES = 1_000_000
_CSV_HEADERS = ({'queue_id', 'queue_name'}, {'id', 'name'})


def parse_channels(text: str) -> FrozenSet[str]:
  """`--channels` as a set of channel names; raises ValueError for an empty
  list or an unknown channel."""
  channels = frozenset(c.strip().lower() for c in text.split(',') if c.strip())
  unknown = sorted(channels - set(CHANNELS))
  if not channels or unknown:
    raise ValueError(
      f'--channels={text!r}: expected a comma-separated list of {", ".join(CHANNELS)}'
      + (f'; unknown: {", ".join(unknown)}' if unknown else '')
    )
  return channels


def trigger_topic_kind(topic: Optional[str]) -> Optional[str]:
  """`acd.start` or `acd.end` for `--genesys_trigger_topic`
  (`v2.detail.events.conversation.{id}.acd.end`), None when unset."""
  if topic is None:
    return None
  match = _TRIGGER_TOPIC.fullmatch(topic)
  if match is None:
    raise ValueError(
      f'--genesys_trigger_topic={topic[:200]!r}: expected '
      "'v2.detail.events.conversation.{id}.acd.start' or '...acd.end'"
    )
  return match.group(1)


def _checked_name(path: str, where: str, queue_id: object, name: object) -> tuple:
  if not isinstance(queue_id, str) or not isinstance(name, str) or not queue_id or not name:
    raise ValueError(f'--queue_names={path}: {where}: queue id and name must be non-empty text')
  if len(name) > MAX_QUEUE_NAME_CHARS:
    raise ValueError(f'--queue_names={path}: {where}: name over {MAX_QUEUE_NAME_CHARS} characters')
  return queue_id, name


def _json_names(path: str, data: object) -> Dict[str, str]:
  """{id: name}, or the Genesys queues API's {"entities": [{"id", "name"}]}."""
  if isinstance(data, dict) and isinstance(data.get('entities'), list):
    pairs = []
    for index, entity in enumerate(data['entities']):
      if not isinstance(entity, dict):
        raise ValueError(f'--queue_names={path}: entities[{index}] is not an object')
      pairs.append(_checked_name(path, f'entities[{index}]', entity.get('id'), entity.get('name')))
    return dict(pairs)
  if isinstance(data, dict):
    return dict(_checked_name(path, f'key {k[:60]!r}', k, v) for k, v in data.items())
  raise ValueError(f'--queue_names={path}: a JSON file must hold an object of id -> name')


def _csv_names(path: str, text: str) -> Dict[str, str]:
  names: Dict[str, str] = {}
  for number, row in enumerate(csv.reader(text.splitlines()), start=1):
    if not row or (number == 1 and {c.strip().lower() for c in row} in _CSV_HEADERS):
      continue
    if len(row) != 2:
      raise ValueError(f'--queue_names={path}: line {number}: expected queue_id,queue_name')
    queue_id, name = _checked_name(path, f'line {number}', row[0].strip(), row[1].strip())
    names[queue_id] = name
  return names


def load_queue_names(path: Optional[str]) -> Mapping[str, str]:
  """`--queue_names` as a read-only map of queue id -> name (empty when
  unset). A file ending in .json holds a JSON object (or a Genesys queues
  API export); any other a CSV of queue_id,queue_name with an optional
  header. Raises ValueError naming the file and the line or key at fault."""
  if path is None:
    return types.MappingProxyType({})
  try:
    with open(path, encoding='utf-8') as file:
      text = file.read()
  except (OSError, UnicodeDecodeError) as e:
    raise ValueError(f'--queue_names={path}: cannot read it ({type(e).__name__})') from None
  if path.lower().endswith('.json'):
    try:
      names = _json_names(path, json.loads(text))
    except json.JSONDecodeError as e:
      raise ValueError(f'--queue_names={path}: not JSON ({e.msg}, line {e.lineno})') from None
  else:
    names = _csv_names(path, text)
  if len(names) > MAX_QUEUE_NAMES:
    raise ValueError(f'--queue_names={path}: more than {MAX_QUEUE_NAMES:,} queues')
  return types.MappingProxyType(names)


# A membership file is a configuration export too.
MAX_QUEUE_MEMBERS = 1_000_000
MAX_QUEUES_PER_AGENT = 1_000


def load_queue_members(path: Optional[str]) -> Mapping[str, Tuple[str, ...]]:
  """`--queue_members` as a read-only map of agent id -> its queue ids
  (empty when unset): a JSON object {"<user id>": ["<queue id>", ...]}.
  Raises ValueError naming the file and the entry at fault."""
  if path is None:
    return types.MappingProxyType({})
  try:
    with open(path, encoding='utf-8') as file:
      members = json.load(file)
  except (OSError, UnicodeDecodeError) as e:
    raise ValueError(f'--queue_members={path}: cannot read it ({type(e).__name__})') from None
  except json.JSONDecodeError as e:
    raise ValueError(f'--queue_members={path}: not JSON ({e.msg}, line {e.lineno})') from None
  if not isinstance(members, dict):
    raise ValueError(f'--queue_members={path}: expected a JSON object of agent id -> queue ids')
  if len(members) > MAX_QUEUE_MEMBERS:
    raise ValueError(f'--queue_members={path}: more than {MAX_QUEUE_MEMBERS:,} agents')
  checked = {}
  for agent_id, queues in members.items():
    if (
      not agent_id
      or not isinstance(queues, list)
      or len(queues) > MAX_QUEUES_PER_AGENT
      or not all(isinstance(q, str) and q for q in queues)
    ):
      raise ValueError(
        f'--queue_members={path}: agent {agent_id[:100]!r}: expected a list of '
        f'at most {MAX_QUEUES_PER_AGENT} non-empty queue ids'
      )
    checked[agent_id] = tuple(sorted(set(queues)))
  return types.MappingProxyType(checked)
