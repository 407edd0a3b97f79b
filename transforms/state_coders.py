"""Versioned, explicit coders for the state of the stateful steps.

Why not pickle: state outlives the release that wrote it (a savepoint is
restored by the next release), and a pickle names the classes of the
objects it holds, so moving or renaming a class makes old state unreadable,
or worse, readable as something else. Here every state cell is a format
version byte followed by compact JSON of plain values (lists, numbers,
strings, records as field-name maps). Each step lists the versions it can
read; a cell of any other version fails with StateFormatError, whose
message says what to do (docs/upgrades.md), instead of being misread.

A step changes its format by adding a version: the new encoder, and a
decoder for every older version still to be read.
"""

import json
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Type

from apache_beam.coders import Coder

# Not a valid first byte of any state cell written by this module: pickled
# state (what earlier releases wrote) starts with the pickle protocol marker.
_PICKLE_PROTOCOL_MARK = 0x80

UPGRADE_DOC = 'docs/upgrades.md'
# What json.dumps(value, separators=(',', ':'), allow_nan=False) makes for
# each call, made once (a state cell is written per batch and step).
_ENCODER = json.JSONEncoder(separators=(',', ':'), allow_nan=False)


def compact_json(plain: Any) -> str:
  """The JSON text of a plain value as every state cell holds it (compact,
  ASCII, no NaN)."""
  return _ENCODER.encode(plain)


class StateFormatError(ValueError):
  """A state cell in a format this release cannot read."""


class VersionedStateCoder(Coder):
  """Encodes one kind of state cell as a format version byte + JSON.

  `step`: the step's name, for error messages. `version`: the format this
  release writes with `to_plain(value)`. `decoders`: format version ->
  function from the decoded JSON value to the state value; it must include
  `version`. `to_json` (optional): a faster way to the same text,
  `compact_json(to_plain(value))`, for a large cell that can reuse the
  text of its unchanged parts.
  """

  def __init__(
    self,
    step: str,
    version: int,
    to_plain: Callable[[Any], Any],
    decoders: Mapping[int, Callable[[Any], Any]],
    to_json: Optional[Callable[[Any], str]] = None,
  ):
    if not 1 <= version < _PICKLE_PROTOCOL_MARK or version not in decoders:
      raise ValueError(f'{step}: format v{version} needs a decoder, 1..127')
    self._step = step
    self._version = version
    self._prefix = bytes((version,))
    self._to_plain = to_plain
    self._to_json = to_json
    self._decoders = dict(decoders)

  def encode(self, value: Any) -> bytes:
    text = (
      self._to_json(value) if self._to_json is not None else _ENCODER.encode(self._to_plain(value))
    )
    return self._prefix + text.encode('utf-8')

  def decode(self, encoded: bytes) -> Any:
    version = encoded[0] if encoded else None
    decoder = self._decoders.get(version)
    if decoder is None:
      raise StateFormatError(self._unreadable(version))
    try:
      return decoder(json.loads(encoded[1:]))
    except (ValueError, TypeError, KeyError, IndexError) as e:
      raise StateFormatError(
        f'{self._step}: state in format v{version} does not decode '
        f'({type(e).__name__}: {e}); see {UPGRADE_DOC}'
      ) from None

  def _unreadable(self, version) -> str:
    readable = ', '.join(f'v{v}' for v in sorted(self._decoders))
    if version == _PICKLE_PROTOCOL_MARK:
      written = 'pickled state (a release before versioned state)'
    elif version is None:
      written = 'an empty state cell'
    else:
      written = f'state in format v{version} (a newer release?)'
    return (
      f'{self._step}: {written}; this release reads {readable}. Restore '
      'the savepoint with the release that wrote it, or start this '
      f'release without it after draining the job; see {UPGRADE_DOC}'
    )

  def is_deterministic(self) -> bool:
    return False  # JSON object order follows insertion; never a key coder

  def __eq__(self, other):
    return (
      type(self) is type(other) and self._step == other._step and self._version == other._version
    )

  def __hash__(self):
    return hash((type(self), self._step, self._version))

  def __repr__(self):
    return f'VersionedStateCoder({self._step!r}, v{self._version})'


def record_to_plain(record: NamedTuple) -> Dict[str, Any]:
  """A record as a field-name map: independent of its class's module and of
  the order of its fields."""
  return record._asdict()


def record_from_plain(record_type: Type[NamedTuple], plain: Dict[str, Any]) -> NamedTuple:
  """The inverse of record_to_plain; a missing or unknown field raises
  TypeError (a format change that needs a new version)."""
  return record_type(**plain)
