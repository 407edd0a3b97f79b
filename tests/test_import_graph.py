"""The project's import graph, read statically (ast: nothing is imported).

In: the modules of the project's own packages (PACKAGES). Checked: no import
cycle among them, and transforms/ reads no options: it imports no module
that defines a PipelineOptions class (nor Beam's pipeline_options) and never
calls `view_as`. The transforms take the frozen configs of options/config.py,
built once from the options; a transform reading options was how
options/stream_options.py -> transforms/sink_registry.py -> the sinks ->
options made a cycle. `--sink`'s choices are a literal list, since options
may not import the registry: checked against it here.
"""

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

from options.stream_options import DEFAULT_SINK, SINK_NAMES
from transforms.sink_registry import SINKS

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ('clients', 'options', 'pipelines', 'scripts', 'testing', 'transforms')
# Beam's module of PipelineOptions and its views.
BEAM_OPTIONS = 'apache_beam.options.pipeline_options'

Graph = Dict[str, Set[str]]


def project_modules(root: Path) -> Dict[str, Path]:
  """Dotted module name -> file, for every module of PACKAGES under `root`."""
  modules = {}
  for package in PACKAGES:
    if not (root / package / '__init__.py').is_file():
      continue  # testing/ exists once the reference code moves there
    for path in sorted((root / package).rglob('*.py')):
      parts = path.relative_to(root).with_suffix('').parts
      modules['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
  return modules


def _imports(module: str, path: Path, tree: ast.AST) -> Iterator[Tuple[int, str, Optional[str]]]:
  """(line, module, name) for each import in `tree`, at any depth (an import
  inside a function is a dependency too): name is what `from module import
  name` takes, None for `import module`. Relative imports made absolute."""
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield node.lineno, alias.name, None
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        package = module.split('.')
        if path.name != '__init__.py':
          package = package[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = '.'.join([*package, *([node.module] if node.module else [])])
      for alias in node.names:
        yield node.lineno, base, alias.name


def _target(imported: str, name: Optional[str], modules: Dict[str, Path]) -> Optional[str]:
  """The project module an import loads: `from a import b` loads module a.b
  when there is one, else a; None outside the project."""
  if name is not None and f'{imported}.{name}' in modules:
    return f'{imported}.{name}'
  parts = imported.split('.')
  while parts and '.'.join(parts) not in modules:
    parts.pop()
  return '.'.join(parts) or None


def _parsed(root: Path) -> Tuple[Dict[str, Path], Dict[str, ast.AST]]:
  """The project's modules (project_modules) and their syntax trees."""
  modules = project_modules(root)
  return modules, {m: ast.parse(p.read_text(encoding='utf-8'), str(p)) for m, p in modules.items()}


def import_graph(root: Path) -> Graph:
  """Module -> the project modules it imports."""
  modules, trees = _parsed(root)
  return {
    m: {
      t
      for _, imported, name in _imports(m, modules[m], trees[m])
      if (t := _target(imported, name, modules)) is not None and t != m
    }
    for m in modules
  }


def find_cycle(graph: Graph) -> Optional[List[str]]:
  """A cycle as the path a -> ... -> a, or None."""
  done: Set[str] = set()
  path: List[str] = []

  def visit(node: str) -> Optional[List[str]]:
    path.append(node)
    for successor in sorted(graph[node]):
      if successor in path:
        return path[path.index(successor) :] + [successor]
      if successor not in done:
        cycle = visit(successor)
        if cycle:
          return cycle
    path.pop()
    done.add(node)
    return None

  for node in sorted(graph):
    if node not in done:
      cycle = visit(node)
      if cycle:
        return cycle
  return None


def options_modules(trees: Dict[str, ast.AST]) -> Set[str]:
  """The modules defining a PipelineOptions subclass (directly or through
  another one)."""
  classes = {'PipelineOptions'}
  defining: Set[str] = set()
  grown = True
  while grown:
    grown = False
    for module, tree in trees.items():
      for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
          continue
        bases = {
          b.attr if isinstance(b, ast.Attribute) else getattr(b, 'id', '') for b in node.bases
        }
        if bases & classes:
          defining.add(module)
          grown |= node.name not in classes
          classes.add(node.name)
  return defining


def options_reads(root: Path) -> List[str]:
  """'file:line: what' for each place transforms/ reads options."""
  modules, trees = _parsed(root)
  defining = options_modules(trees)
  found = []
  for module in sorted(m for m in modules if m.split('.')[0] == 'transforms'):
    where = modules[module].relative_to(root)
    for line, imported, name in _imports(module, modules[module], trees[module]):
      target = _target(imported, name, modules)
      loaded = f'{imported}.{name}' if name else imported
      if target in defining:
        found.append(f'{where}:{line}: imports {loaded} ({target} defines PipelineOptions)')
      elif loaded.startswith(BEAM_OPTIONS):
        found.append(f'{where}:{line}: imports {loaded}')
    found += [
      f'{where}:{node.lineno}: calls view_as'
      for node in ast.walk(trees[module])
      if isinstance(node, ast.Attribute) and node.attr == 'view_as'
    ]
  return found


def test_sink_choices_are_the_registry_names_in_order():
  assert list(SINK_NAMES) == list(SINKS)
  assert DEFAULT_SINK in SINKS


def test_the_project_has_no_import_cycle():
  cycle = find_cycle(import_graph(REPO))
  assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_transforms_take_configs_and_read_no_options():
  assert options_reads(REPO) == []


def test_the_checks_see_a_cycle_and_an_options_read(tmp_path):
  """The checks themselves, on a tree made to break both rules."""
  files = {
    'options/__init__.py': '',
    'options/sink_options.py': (
      'from apache_beam.options.pipeline_options import PipelineOptions\n'
      'class SinkOptions(PipelineOptions):\n'
      '  @classmethod\n'
      '  def _add_argparse_args(cls, parser):\n'
      '    from transforms.registry import SINKS\n'
    ),
    'transforms/__init__.py': '',
    'transforms/registry.py': 'from . import sink\n',
    'transforms/sink.py': (
      'from options.sink_options import SinkOptions\n'
      'def path(options):\n'
      '  return options.view_as(SinkOptions).path\n'
    ),
  }
  for name, text in files.items():
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(text)

  assert find_cycle(import_graph(tmp_path)) == [
    'options.sink_options',
    'transforms.registry',
    'transforms.sink',
    'options.sink_options',
  ]
  assert options_reads(tmp_path) == [
    'transforms/sink.py:1: imports options.sink_options.SinkOptions '
    '(options.sink_options defines PipelineOptions)',
    'transforms/sink.py:3: calls view_as',
  ]
