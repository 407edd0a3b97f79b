"""Typed, validated launch parameters read from a Flex-Template-style spec.

In: a metadata JSON file laid out like a Dataflow Flex Template's
(`name`, `description`, `parameters[]` with `name`, `label`, `helpText`,
`isOptional`, `regexes`, and the optional `paramType`, `defaultValue`,
`enumOptions`, `groupName`, `parentName`, `parentTriggerValues`,
`customMetadata`), and parameter values as given at launch
(name -> list of strings).
Out: `TemplateSpec.resolve` checks the values and returns them completed
with the defaults; `TemplateSpec.to_argv` turns them into pipeline flags.
Every problem found is reported at once, one specific line each.

Semantics beyond Dataflow's (Dataflow uses some fields for rendering only):
- a value must fully match every regex of its parameter;
- `parentName`/`parentTriggerValues`: a parameter applies only while its
  parent applies and one of the parent's values (given or default) is a
  trigger value. Only then is its default passed, and only then does
  `isOptional: false` make it required; giving it otherwise is an error.
  A parent must be declared before its children, so there are no cycles;
- `paramType: BOOLEAN`: "true" passes the bare flag, "false" passes nothing
  (so every BOOLEAN parameter must be a flag that is off by default).

Project extension, in Dataflow's `customMetadata` (string -> string):
- `expected`: what a valid value looks like, for error messages;
- `repeated: "true"`: the parameter may be given several times, each value
  becomes its own flag; the same value twice is an error;
- `inputFile: "true"`: a local path (no `scheme://`) must exist at launch;
- `passThrough: "flink"`: not a Python option: the flag goes unchanged to
  the Flink job server (Beam's Java `FlinkPipelineOptions`);
- `sensitive: "true"`: a value may hold a credential by mistake (e.g. a
  Kafka setting), so error messages show only the text before its first
  `=`.

Stdlib only, on purpose: the launcher rejects bad parameters before paying
for importing Beam.
"""

import difflib
import json
import os
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Pattern, Sequence, Tuple

REQUIRED_FIELDS = ('name', 'label', 'helpText', 'isOptional', 'regexes')
PARAM_TYPES = ('TEXT', 'NUMBER', 'BOOLEAN', 'ENUM')
EXTENSION_KEYS = ('expected', 'repeated', 'inputFile', 'passThrough', 'sensitive')
PASS_THROUGH_TARGETS = ('flink',)
_URL_SCHEME = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*://')


class TemplateError(Exception):
  """The metadata file itself is unusable (a deployment bug, not a user's)."""


class ParameterError(ValueError):
  """Launch parameters that do not fit the spec; `problems` holds one
  message per problem, `str()` all of them, one per line."""

  def __init__(self, problems: Sequence[str]) -> None:
    super().__init__('\n'.join(problems))
    self.problems = list(problems)


@dataclass(frozen=True)
class Parameter:
  """One launch parameter, as declared in the metadata file."""

  name: str
  label: str
  help_text: str
  optional: bool
  regexes: Tuple[Pattern[str], ...]
  param_type: str = 'TEXT'
  default: Optional[str] = None
  enum_values: Tuple[str, ...] = ()
  group: str = ''
  parent: Optional[str] = None
  trigger_values: Tuple[str, ...] = ()
  expected: str = ''
  repeated: bool = False
  input_file: bool = False
  pass_through: Optional[str] = None
  sensitive: bool = False

  @classmethod
  def from_json(cls, raw: object, where: str) -> 'Parameter':
    """Parses one `parameters[]` entry; `where` names it in errors.

    Raises TemplateError when a field is missing or malformed.
    """
    if not isinstance(raw, dict):
      raise TemplateError(f'{where}: expected a JSON object')
    missing = [f for f in REQUIRED_FIELDS if f not in raw]
    if missing:
      raise TemplateError(f'{where}: missing {", ".join(missing)}')
    name = raw['name']
    if not isinstance(name, str) or not re.fullmatch(r'[a-z][a-z0-9_]*', name):
      raise TemplateError(f'{where}: name must be a snake_case flag name')
    where = f'parameter {name}'
    for text_field in ('label', 'helpText'):
      if not isinstance(raw[text_field], str) or not raw[text_field].strip():
        raise TemplateError(f'{where}: {text_field} must be a non-empty string')
    if not isinstance(raw['isOptional'], bool):
      raise TemplateError(f'{where}: isOptional must be true or false')
    regexes = raw['regexes']
    if not isinstance(regexes, list) or not regexes:
      raise TemplateError(f'{where}: regexes must be a non-empty list')
    try:
      compiled = tuple(re.compile(r) for r in regexes)
    except (re.error, TypeError) as e:
      raise TemplateError(f'{where}: regex does not compile: {e}') from e
    param_type = raw.get('paramType', 'TEXT')
    if param_type not in PARAM_TYPES:
      raise TemplateError(
        f'{where}: paramType {param_type!r} is not one of {", ".join(PARAM_TYPES)}'
      )
    enum_values = tuple(o.get('value') for o in raw.get('enumOptions', ()))
    if (param_type == 'ENUM') != bool(enum_values) or not all(
      isinstance(v, str) for v in enum_values
    ):
      raise TemplateError(
        f'{where}: enumOptions (with string values) go with paramType ENUM and only with it'
      )
    custom = raw.get('customMetadata', {})
    unknown = sorted(set(custom) - set(EXTENSION_KEYS))
    if unknown:
      raise TemplateError(
        f'{where}: unknown customMetadata {", ".join(unknown)} (known: {", ".join(EXTENSION_KEYS)})'
      )
    pass_through = custom.get('passThrough')
    if pass_through is not None and pass_through not in PASS_THROUGH_TARGETS:
      raise TemplateError(f'{where}: passThrough must be one of {", ".join(PASS_THROUGH_TARGETS)}')
    default = raw.get('defaultValue')
    if default is not None and not isinstance(default, str):
      raise TemplateError(f'{where}: defaultValue must be a string')
    parent = raw.get('parentName')
    triggers = tuple(raw.get('parentTriggerValues', ()))
    if bool(parent) != bool(triggers):
      raise TemplateError(f'{where}: parentName and parentTriggerValues go together')
    return cls(
      name=name,
      label=raw['label'],
      help_text=raw['helpText'],
      optional=raw['isOptional'],
      regexes=compiled,
      param_type=param_type,
      default=default,
      enum_values=enum_values,
      group=raw.get('groupName', ''),
      parent=parent,
      trigger_values=triggers,
      expected=custom.get('expected', ''),
      repeated=custom.get('repeated') == 'true',
      input_file=custom.get('inputFile') == 'true',
      pass_through=pass_through,
      sensitive=custom.get('sensitive') == 'true',
    )

  def describe_expected(self) -> str:
    """What a valid value looks like, in words."""
    if self.param_type == 'ENUM':
      return 'one of ' + ', '.join(self.enum_values)
    if self.param_type == 'BOOLEAN':
      return 'true or false'
    return self.expected or 'a value matching ' + ' and '.join(r.pattern for r in self.regexes)

  def shown(self, value: str) -> str:
    """`value` as error messages may show it."""
    if self.sensitive:
      return repr(value.partition('=')[0] + '=...')
    return repr(value)

  def matches(self, value: str) -> bool:
    """True when `value` fully matches every regex."""
    return all(r.fullmatch(value) for r in self.regexes)

  def value_problems(self, values: Sequence[str]) -> List[str]:
    """Problems with the given values alone: count, format, files."""
    if len(values) > 1 and not self.repeated:
      return [f'parameter {self.name} given {len(values)} times; it takes one value']
    problems = []
    seen = set()
    for value in values:
      if value in seen:
        problems.append(f'parameter {self.name}: {self.shown(value)} given twice')
      seen.add(value)
      if not self.matches(value):
        problems.append(
          f'parameter {self.name}: {self.shown(value)} is not valid; '
          f'expected {self.describe_expected()}'
        )
      elif self.input_file and not _URL_SCHEME.match(value) and not os.path.exists(value):
        problems.append(f'parameter {self.name}: file {value!r} does not exist')
    return problems

  def flags(self, values: Sequence[str]) -> List[str]:
    """Pipeline flags for validated values."""
    if self.param_type == 'BOOLEAN':
      return [f'--{self.name}'] if values == ['true'] else []
    return [f'--{self.name}={value}' for value in values]


@dataclass(frozen=True)
class TemplateSpec:
  """A template: its name, description and parameters in file order."""

  name: str
  description: str
  parameters: Dict[str, Parameter]

  @classmethod
  def load(cls, path: str) -> 'TemplateSpec':
    """Reads and checks a metadata file; raises TemplateError."""
    try:
      with open(path, encoding='utf-8') as f:
        raw = json.load(f)
    except OSError as e:
      raise TemplateError(f'cannot read template {path}: {e.strerror}') from e
    except ValueError as e:
      raise TemplateError(f'template {path} is not valid JSON: {e}') from e
    try:
      return cls.from_json(raw)
    except TemplateError as e:
      raise TemplateError(f'template {path}: {e}') from e

  @classmethod
  def from_json(cls, raw: object) -> 'TemplateSpec':
    """Builds the spec from parsed JSON; raises TemplateError."""
    if not isinstance(raw, dict):
      raise TemplateError('expected a JSON object')
    for text_field in ('name', 'description'):
      if not isinstance(raw.get(text_field), str) or not raw[text_field]:
        raise TemplateError(f'missing {text_field}')
    if not isinstance(raw.get('parameters'), list) or not raw['parameters']:
      raise TemplateError('missing parameters')
    parameters: Dict[str, Parameter] = {}
    for i, item in enumerate(raw['parameters']):
      param = Parameter.from_json(item, f'parameters[{i}]')
      if param.name in parameters:
        raise TemplateError(f'parameter {param.name} declared twice')
      if param.parent is not None and param.parent not in parameters:
        raise TemplateError(
          f'parameter {param.name}: parent {param.parent} must be declared before it'
        )
      if param.default is not None and not param.matches(param.default):
        raise TemplateError(
          f'parameter {param.name}: defaultValue {param.default!r} does not match its regexes'
        )
      parameters[param.name] = param
    return cls(raw['name'], raw['description'], parameters)

  def resolve(self, given: Mapping[str, Sequence[str]]) -> Dict[str, List[str]]:
    """Checks the given values; returns every applicable parameter that is
    given or has a default, in spec order.

    Raises ParameterError listing every problem: unknown names, wrong
    counts, repeated values, values not matching their regexes, missing
    input files, parameters that do not apply, missing required ones.
    """
    problems = [self._unknown(name) for name in given if name not in self.parameters]
    effective: Dict[str, List[str]] = {}
    undecided = set()
    for name, param in self.parameters.items():
      values = list(given.get(name, ()))
      own = param.value_problems(values)
      problems += own
      if own or param.parent in undecided:
        # Whether a child applies depends on its parent's value: with a bad
        # value it cannot be judged, and guessing would add noise.
        undecided.add(name)
        continue
      if not self._applies(param, effective):
        if values:
          problems.append(
            f'parameter {name} applies only when {param.parent} is '
            f'{" or ".join(param.trigger_values)} (it is '
            f'{_shown(effective.get(param.parent))})'
          )
        continue
      if not values and param.default is not None:
        values = [param.default]
      if values:
        effective[name] = values
      elif not param.optional:
        needed = (
          f' (needed when {param.parent} is {_shown(effective[param.parent])})'
          if param.parent
          else ''
        )
        problems.append(f'missing required parameter {name}{needed}: {param.label}')
    if problems:
      raise ParameterError(problems)
    return effective

  @staticmethod
  def _applies(param: Parameter, effective: Mapping[str, List[str]]) -> bool:
    """A parent that does not apply, or has no value, is absent from
    `effective`, so its children do not apply either."""
    return param.parent is None or any(
      v in param.trigger_values for v in effective.get(param.parent, ())
    )

  def _unknown(self, name: str) -> str:
    close = difflib.get_close_matches(name, self.parameters, n=1)
    hint = f'; did you mean {close[0]}?' if close else ''
    return f'unknown parameter {name!r}{hint}'

  def to_argv(self, resolved: Mapping[str, Sequence[str]]) -> List[str]:
    """Pipeline flags for the output of `resolve`, in spec order."""
    argv: List[str] = []
    for name, values in resolved.items():
      argv += self.parameters[name].flags(list(values))
    return argv

  def describe(self) -> str:
    """A plain-text listing of the parameters, grouped, for --help."""
    lines = [f'{self.name}: {self.description}', '', 'parameters:']
    group = None
    for param in self.parameters.values():
      if param.group != group:
        group = param.group
        lines += ['', f' {group}:']
      facts = ['required' if not param.optional else 'optional']
      if param.parent:
        facts.append(f'when {param.parent}={"|".join(param.trigger_values)}')
      if param.default is not None:
        facts.append(f'default {param.default!r}')
      if param.repeated:
        facts.append('repeatable')
      lines.append(f'  {param.name} ({", ".join(facts)}): {param.describe_expected()}')
      lines.append(f'      {param.help_text}')
    return '\n'.join(lines)


def _shown(values: Optional[Iterable[str]]) -> str:
  return ', '.join(values) if values else 'not set'
