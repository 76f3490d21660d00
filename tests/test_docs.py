"""The docs site (docs/build.py: nbdev processing + Sphinx/MyST-NB, no Quarto) and README generation."""
import html
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / 'docs' / 'build.py'


def _build_module():
    spec = importlib.util.spec_from_file_location('audiokit_docs_build', BUILD)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _text(page: str) -> str:
    "Visible text of the page body (tags stripped, entities decoded)."
    body = page[page.find('<article'):page.rfind('</article>')]
    return html.unescape(re.sub(r'<[^>]+>', '', body))


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "A site with the audio and simulate notebooks and the home page, built from scratch (examples executed) in a temp folder."
    tmp = tmp_path_factory.mktemp('docs')
    (tmp / 'proc').mkdir()
    (tmp / 'proc' / '02_datasets.ipynb').write_text('{}')   # a page processed before the notebooks were renumbered
    r = subprocess.run([sys.executable, str(BUILD), 'site', '--only', 'audio', 'simulate', '--out', str(tmp / 'site'),
                        '--proc', str(tmp / 'proc')], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert not (tmp / 'proc' / '02_datasets.ipynb').exists() and 'removed 02_datasets.ipynb' in r.stdout
    return tmp / 'site'


def test_audio_page_has_show_doc_and_outputs(site):
    page = (site / 'audio.html').read_text()
    text = _text(page)
    # show_doc of load_audio: a section with its own anchor, the signature, the docstring
    assert 'id="load-audio"' in page
    sig = re.sub(r'\s+', ' ', text)
    assert 'def load_audio( path:str | os.PathLike, sample_rate:int | None=None' in sig
    assert 'Read path as float32 (channels, samples)' in sig
    # every exported name of audiokit.audio has its show_doc section
    import audiokit.audio as A
    from docutils.nodes import make_id
    missing = [n for n in A.__all__ if callable(getattr(A, n)) and f'id="{make_id(n)}"' not in page]
    assert not missing, missing
    # an example's output was rendered (print(ffmpeg_exe()) prints the binary's path)
    outs = re.findall(r'<div class="cell_output[^"]*">(.*?)</div>\s*</div>', page, re.S)
    assert outs and any('ffmpeg' in html.unescape(re.sub(r'<[^>]+>', '', o)) for o in outs)
    # Quarto-only syntax was translated, not leaked onto the page
    assert '{target=' not in text and '::: {' not in text and 'output-file' not in text
    assert '#| echo' not in text


def test_simulate_page_shows_its_plot(site):
    "A figure an example draws (06_simulate's spectrograms) is on the page, as an image file of the site."
    page = (site / 'simulate.html').read_text()
    imgs = re.findall(r'<img[^>]*src="(_images/[^"]+\.png)"', page)
    assert imgs and all((site / i).stat().st_size > 1000 for i in imgs)
    assert 'id="simulate-icbhi"' in page    # show_doc of the exported function


def test_home_page_lists_notebooks(site):
    page = (site / 'index.html').read_text()
    assert 'href="audio.html"' in page and 'href="simulate.html"' in page
    assert page.index('href="audio.html"') < page.index('href="simulate.html"')   # numeric order
    assert 'Quick start' in _text(page)
    assert not (ROOT / 'jupyter_execute').exists()


def test_quarto_markdown_is_rewritten():
    b = _build_module()
    md = ('::: {.callout-warning}\nCareful\n:::\n'
          '[source](https://x.org/a.py#L3){target="_blank" style="float:right"}\n'
          '## Title {.unnumbered}\n'
          'See [`load_audio`](https://audiokit.github.io/audiokit/audio.html#load_audio).')
    out = b.quarto_to_myst(md, 'https://audiokit.github.io/audiokit/')
    assert ':::{warning}' in out and '::: {' not in out
    assert '<a href="https://x.org/a.py#L3" target="_blank" style="float:right">source</a>' in out
    assert '## Title\n' in out
    assert '<a href="audio.html#load-audio">`load_audio`</a>' in out
    nb = {'cells': [{'cell_type': 'raw', 'metadata': {}, 'source': '---\ntitle: audio\ndescription: Reading audio\noutput-file: audio.html\n---\n'},
                    {'cell_type': 'code', 'metadata': {}, 'execution_count': None, 'source': '#| echo: false\n#| output: asis\nshow_doc(f)',
                     'outputs': [{'output_type': 'execute_result', 'metadata': {}, 'execution_count': None,
                                  'data': {'text/markdown': '---\n\n### f\n\n```python\n\ndef f(\n    \n):\n\n\n```', 'text/plain': 'x'}}]},
                    {'cell_type': 'code', 'metadata': {}, 'execution_count': None, 'source': '#| output: false\nx = 1', 'outputs': []}],
          'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    mnb, fm = b.to_myst_notebook(nb)
    assert fm['output-file'] == 'audio.html' and b.page_name(Path('01_audio.ipynb'), fm) == 'audio'
    cells = mnb['cells']
    assert cells[0]['source'].startswith('# audio') and 'Reading audio' in cells[0]['source']
    assert cells[1]['cell_type'] == 'markdown' and cells[1]['source'].startswith('### f') and 'def f()' in cells[1]['source']
    assert cells[2]['source'] == 'x = 1' and 'remove-output' in cells[2]['metadata']['tags']


def test_readme_from_index(tmp_path):
    "README generation keeps the Quick start block that .ci/run reads (the same as the committed README's)."
    out = tmp_path / 'README.md'
    r = subprocess.run([sys.executable, str(BUILD), 'readme', '--out', str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    md = out.read_text()
    assert md.startswith('# audiokit\n\n> ')
    def quick_start(s):
        s = s[s.index('## Quick start'):]
        return s[s.index('```'):].split('```')[1]
    assert quick_start(md) == quick_start((ROOT / 'README.md').read_text())
    assert len(quick_start(md).strip().splitlines()) == 3  # ```bash line + two commands
    assert 'WARNING: THIS FILE WAS AUTOGENERATED' not in md and '{target=' not in md


def test_pages_are_named_after_their_modules():
    "Every numbered notebook, in numeric order, makes the page nbdev's doc links point at: MODULE.html for `#| default_exp MODULE`."
    b = _build_module()
    nbs = [p for p in b._notebooks(ROOT / 'nbs') if p.stem != 'index']
    assert [p.name for p in nbs] == sorted(p.name for p in (ROOT / 'nbs').glob('[0-9]*.ipynb'))
    for p in nbs:
        first = next(''.join(c['source']) for c in json.loads(p.read_text())['cells'] if c['cell_type'] == 'code')
        module = re.search(r'default_exp\s+(\S+)', first)[1]
        # the package's own notebook exports to __init__, whose page is named after the notebook (no link points there)
        assert b.page_name(p, {}) == (p.stem.split('_', 1)[1] if module == '__init__' else module), p.name
    assert b.page_name(Path('22_generate_backends.ipynb'), {}) == 'generate_backends'
    assert [p.name for p in b._notebooks(ROOT / 'nbs', ['generate'])] == ['index.ipynb', '25_generate.ipynb']


def test_stale_and_clashing_pages(tmp_path):
    b = _build_module()
    (tmp_path / 'nbs').mkdir(); (tmp_path / 'proc').mkdir()
    for n in ('01_audio', '22_generate', '25_generate'): (tmp_path / 'proc' / f'{n}.ipynb').write_text('{}')
    (tmp_path / 'nbs' / '01_audio.ipynb').write_text('{}'); (tmp_path / 'nbs' / '25_generate.ipynb').write_text('{}')
    assert b.prune_stale(tmp_path / 'proc', tmp_path / 'nbs') == ['22_generate.ipynb']
    assert sorted(p.name for p in (tmp_path / 'proc').iterdir()) == ['01_audio.ipynb', '25_generate.ipynb']
    # two notebooks that would make one page: an error naming both, not one page silently replacing the other
    nb = lambda: json.dumps({'cells': [], 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5})
    (tmp_path / 'proc' / '22_generate.ipynb').write_text(nb()); (tmp_path / 'proc' / '25_generate.ipynb').write_text(nb())
    (tmp_path / 'proc' / '01_audio.ipynb').write_text(nb())
    cfg = type('Cfg', (), {'get': lambda self, k, d=None: d, 'nbs_path': str(tmp_path / 'nbs'), 'lib_name': 'x'})()
    with pytest.raises(ValueError, match='22_generate.ipynb and 25_generate.ipynb both make the page generate.html'):
        b.stage(cfg, tmp_path / 'proc', tmp_path / 'src')


def test_only_an_unknown_notebook_is_an_error(tmp_path):
    r = subprocess.run([sys.executable, str(BUILD), 'site', '--only', '22_generate', '--out', str(tmp_path / 's'), '--proc', str(tmp_path / 'p')],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 1 and "no notebook named ['22_generate']" in r.stderr and not (tmp_path / 's').exists()
