"""House rules of the source notebooks that nbdev itself does not check."""
import ast, json, re
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
