"""House rules of the source notebooks (and of the tests) that nbdev itself does not check."""
import ast, configparser, json, re
from importlib.metadata import packages_distributions
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / 'nbs').glob('*.ipynb')) + sorted((ROOT / 'nbs' / 'experiments').glob('*.ipynb'))
_EXPORTED = re.compile(r'#\|\s*(export|exports|exporti|exec_doc)\b')

def code_cells(nb_path):
    for i, c in enumerate(json.loads(nb_path.read_text())['cells']):
        if c['cell_type'] == 'code': yield i, ''.join(c['source'])

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=lambda p: p.name)
def test_imports_live_in_cells_of_their_own(nb):
    # nbdev's doc processing executes every cell that imports; a cell that also computes breaks the docs build
    bad = []
    for i, src in code_cells(nb):
        if _EXPORTED.search(src) or re.search(r'#\|\s*eval:\s*false', src): continue
        try: tree = ast.parse(src)
        except SyntaxError: continue
        nodes = list(ast.walk(tree))
        if any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in nodes) and any(isinstance(n, (ast.Expr, ast.Assign)) for n in nodes):
            bad.append(i)
    assert not bad, f"{nb.name}: cells {bad} mix imports with other code"

@pytest.mark.parametrize('nb', sorted((ROOT / 'nbs' / 'experiments').glob('*.ipynb')), ids=lambda p: p.name)
def test_experiment_notebooks_have_a_parameters_cell(nb):
    cells = json.loads(nb.read_text())['cells']
    assert any('parameters' in c.get('metadata', {}).get('tags', []) for c in cells), f"{nb.name} has no cell tagged 'parameters'"

NUMBERED = sorted(p for p in (ROOT / 'nbs').glob('[0-9]*.ipynb'))

def test_one_module_per_numbered_notebook():
    "Each numbered notebook starts with `#| default_exp NAME`; numbers and modules are unique."
    exp = {}
    for nb in NUMBERED:
        first = next((src for _, src in code_cells(nb)), '')
        m = re.match(r'\s*#\|\s*default_exp\s+(\S+)\s*$', first)
        assert m, f"{nb.name}: the first code cell must be `#| default_exp NAME` alone"
        exp[nb.name] = m[1]
    numbers = [nb.name.split('_', 1)[0] for nb in NUMBERED]
    assert len(set(numbers)) == len(numbers), f"notebook numbers used twice: {sorted(n for n in numbers if numbers.count(n) > 1)}"
    assert len(set(exp.values())) == len(exp), f"a module exported by two notebooks: {exp}"

def test_every_module_has_its_notebook():
    "No stale module: every audiokit/*.py was exported from a notebook that still exists."
    stale = []
    for py in sorted((ROOT / 'audiokit').glob('*.py')):
        if py.name in ('__init__.py', '_modidx.py'): continue
        m = re.search(r'File to edit: \.\./nbs/(\S+\.ipynb)', py.read_text())
        if not m or not (ROOT / 'nbs' / m[1]).exists(): stale.append(py.name)
    assert not stale, f"modules without a source notebook (delete them, or restore the notebook): {stale}"

def _requirements() -> set[str]:
    "Distribution names (normalised) of settings.ini `requirements` and `dev_requirements`: hard dependencies."
    cfg = configparser.ConfigParser(); cfg.read(ROOT / 'settings.ini')
    reqs = (cfg['DEFAULT'].get('requirements', '') + ' ' + cfg['DEFAULT'].get('dev_requirements', '')).split()
    return {re.split(r'[\[<>=!~;]', r, maxsplit=1)[0].lower().replace('_', '-') for r in reqs}

def test_tests_do_not_skip_hard_dependencies():
    "`pytest.importorskip` of a requirement or of audiokit itself turns a broken install into a green run: import it plainly."
    reqs, owners = _requirements(), packages_distributions()
    bad = []
    for f in sorted((ROOT / 'tests').glob('*.py')):
        for node in ast.walk(ast.parse(f.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, 'attr', getattr(node.func, 'id', None)) == 'importorskip'): continue
            arg = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            top = str(arg).split('.')[0]
            dists = {d.lower().replace('_', '-') for d in owners.get(top, [])}
            if arg is None or top == 'audiokit' or dists & reqs: bad.append(f"{f.name}:{node.lineno} importorskip({arg!r})")
    assert not bad, bad
