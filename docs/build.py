"""Build the audiokit docs site offline, without Quarto, and regenerate README.md.

    .venv/bin/python docs/build.py            # site -> _docs/   (make docs)
    .venv/bin/python docs/build.py readme     # README.md from index.ipynb (make readme)

Steps of `site`:
1. nbdev's doc processing (what `nbdev_proc_nbs` does, minus its Quarto install): every notebook in
   `nbs/` is executed the way `nbdev_test` runs it (cells flagged with `tst_flags` skipped, so the
   examples have their outputs), then nbdev's processors run on it (frontmatter, `show_doc` for every
   exported name, hidden cells removed, doc links), and it is written to `_proc/`.
   `--no-execute` keeps only the outputs saved in the notebooks (nbdev_proc_nbs's behaviour).
2. The Quarto-flavoured markdown nbdev emits is rewritten into MyST (frontmatter, `output: asis`
   show_doc outputs, `{...}` attributes, `:::` callouts, cell options) into `_proc/_sphinx/`, with a
   toctree of every notebook in numeric order appended to the home page (index.ipynb).
3. Sphinx + MyST-NB renders those notebooks without executing them into `_docs/`.

Users who have Quarto can still run `nbdev_docs` / `nbdev_readme` (settings.ini is unchanged).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = Path(__file__).resolve().parent


def _cfg():
    os.chdir(ROOT)
    from nbdev.config import get_config
    return get_config()


# ---------------------------------------------------------------- 1. nbdev processing (+ execution)
def _notebooks(nbs: Path, only: list[str] | None = None) -> list[Path]:
    "Source notebooks in numeric order (index.ipynb first); `_`/`.`-prefixed names skipped like nbdev does."
    files = sorted(p for p in nbs.glob('*.ipynb') if not p.name.startswith(('_', '.')))
    if only:
        files = [p for p in files if p.stem == 'index' or any(p.stem == o or p.stem.split('_', 1)[-1] == o or p.name == o for o in only)]
    return sorted(files, key=lambda p: (p.stem != 'index', p.name))


def _skip_cell(flags: set[str]):
    from nbdev.process import extract_directives
    def skip(cell) -> bool:
        if cell.cell_type != 'code': return True
        if 'nbdev_export' + '(' in cell.source: return True
        d = extract_directives(cell, remove=False)
        if d.get('eval:', [''])[0].lower() == 'false': return True
        return bool(flags & d.keys())
    return skip


def process_notebook(src: str, dst: str, execute: bool, flags: tuple[str, ...]) -> dict:
    "Run in a fresh process: execute `src` like nbdev_test (optional), apply nbdev's doc processors, write `dst`."
    os.chdir(ROOT)
    os.environ.setdefault('MPLBACKEND', 'Agg')
    src, dst = Path(src), Path(dst)
    from execnb.nbio import read_nb, write_nb
    from nbdev.processors import FilterDefaults
    t0, err = time.perf_counter(), None
    nb = read_nb(src)
    if execute:
        from execnb.shell import CaptureShell
        from fastcore.xtras import working_directory
        os.environ['IN_TEST'] = '1'
        k = CaptureShell(src)
        try:
            with working_directory(src.parent): k.run_all(nb, exc_stop=True, preproc=_skip_cell(set(flags)))
        except BaseException as e:  # a failing example: keep the outputs so far, report it
            err = f"executing {src.name} failed: {type(e).__name__}: {e}"
        finally:
            os.environ.pop('IN_TEST', None)
    os.environ['IN_TEST'] = '1'
    try: FilterDefaults()(nb)
    except BaseException as e:
        msg = str(e).splitlines()[0]
        cause = e.__cause__ or e
        return {'src': src.name, 'ok': False, 'seconds': time.perf_counter() - t0,
                'error': f"nbdev doc processing of {src.name} failed: {msg} ({type(cause).__name__}: {cause})"}
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_nb(nb, dst)
    return {'src': src.name, 'ok': err is None, 'seconds': time.perf_counter() - t0, 'error': err}


def prune_stale(proc: Path, nbs: Path) -> list[str]:
    "Delete processed notebooks whose source is gone (renamed or deleted, e.g. 02_datasets -> 04_datasets): their pages must not linger."
    gone = [p for p in sorted(proc.glob('*.ipynb')) if not (nbs / p.name).exists()]
    for p in gone:
        p.unlink(); print(f"  removed {p.name} from {proc} (no {nbs.name}/{p.name})", flush=True)
    return [p.name for p in gone]


def proc_nbs(cfg, proc: Path, execute: bool = True, force: bool = False, workers: int = 2,
             only: list[str] | None = None) -> list[dict]:
    "Process the notebooks into `proc`; a notebook whose output is newer than it (and than settings.ini) is skipped."
    nbs = Path(cfg.nbs_path)
    proc.mkdir(parents=True, exist_ok=True)
    stamp = proc / ('.executed' if execute else '.plain')
    other = proc / ('.plain' if execute else '.executed')
    if other.exists() or force: force = True; other.unlink(missing_ok=True)
    chk = max(Path(cfg.config_file).stat().st_mtime, Path(__file__).stat().st_mtime)
    flags = tuple(str(cfg.get('tst_flags', '')).split())
    prune_stale(proc, nbs)
    jobs = []
    for src in _notebooks(nbs, only):
        dst = proc / src.name
        if not force and dst.exists() and dst.stat().st_mtime >= max(src.stat().st_mtime, chk): continue
        jobs.append((str(src), str(dst), execute, flags))
    results = []
    if jobs:
        print(f"processing {len(jobs)} notebook(s){' (executing examples)' if execute else ''} with {workers} worker(s)", flush=True)
        if str(DOCS) not in sys.path: sys.path.insert(0, str(DOCS))
        import build as _mod  # workers unpickle the function by module name (not __main__)
        with ProcessPoolExecutor(max(1, min(workers, len(jobs))), mp_context=get_context('spawn')) as ex:
            futs = {ex.submit(_mod.process_notebook, *j): j for j in jobs}
            for f in as_completed(futs):
                try: r = f.result()
                except BaseException as e: r = {'src': Path(futs[f][0]).name, 'ok': False, 'seconds': 0, 'error': f"{type(e).__name__}: {e}"}
                print(f"  {'ok ' if r['ok'] else 'ERR'} {r['src']} ({r['seconds']:.1f} s){'' if r['ok'] else ': ' + r['error']}", flush=True)
                if not r['ok']:  # never leave a stale or half-made page that looks current
                    d = proc / r['src']
                    if d.exists(): os.utime(d, (0, 0))
                results.append(r)
    stamp.touch()
    return results


# ---------------------------------------------------------------- 2. Quarto markdown -> MyST
_CALLOUT = re.compile(r'^(?P<fence>:{3,})\s*\{\s*\.callout-(?P<kind>\w+)(?P<rest>[^}]*)\}\s*$')
_DIV = re.compile(r'^(?P<fence>:{3,})\s*\{(?P<attrs>[^}]*)\}\s*$')
_LINK_ATTR = re.compile(r'\[(?P<text>[^\]]*)\]\((?P<url>[^)\s]+)\)\{(?P<attrs>[^}]*)\}')
_HEADING_ATTR = re.compile(r'^(?P<h>#{1,6} .*?)\s*\{[^}]*\}\s*$', re.M)
_SPAN_ATTR = re.compile(r'\[(?P<text>[^\]]*)\]\{[^}]*\}')
_ADMONITIONS = {'note': 'note', 'tip': 'tip', 'warning': 'warning', 'important': 'important', 'caution': 'caution'}


def quarto_to_myst(md: str, doc_prefix: str = '') -> str:
    "Rewrite the Quarto-only markdown that nbdev emits into markdown MyST renders."
    out = []
    for line in md.split('\n'):
        m = _CALLOUT.match(line)
        if m:
            kind = _ADMONITIONS.get(m['kind'], 'note')
            title = re.search(r'title\s*=\s*"([^"]*)"', m['rest'])
            out.append(f"{m['fence']}{{admonition}} {title[1]}\n:class: {kind}" if title else f"{m['fence']}{{{kind}}}")
            continue
        m = _DIV.match(line)
        if m:
            classes = ' '.join(c[1:] for c in m['attrs'].split() if c.startswith('.'))
            out.append(f"{m['fence']}{{div}}" + (f"\n:class: {classes}" if classes else ''))
            continue
        out.append(line)
    md = '\n'.join(out)
    def link(m):
        attrs = m['attrs'].strip()
        attrs = ' '.join(f'class="{a[1:]}"' if a.startswith('.') else a for a in attrs.split(' ') if a) if '=' not in attrs else attrs
        return f'<a href="{m["url"]}" {attrs}>{m["text"]}</a>'
    md = _LINK_ATTR.sub(link, md)
    md = _HEADING_ATTR.sub(lambda m: m['h'], md)
    md = _SPAN_ATTR.sub(lambda m: m['text'], md)
    md = re.sub(r'<!-- WARNING: THIS FILE WAS AUTOGENERATED! DO NOT EDIT! -->\s*', '', md)
    if doc_prefix:  # nbdev's doc links point at the published site: make them relative (works offline)
        from docutils.nodes import make_id
        def rel(m):  # raw HTML: MyST would read `page.html#x` as a local target; Sphinx ids are make_id(fragment)
            href = f"{m['page']}.html" + (f"#{make_id(m['frag'])}" if m['frag'] else '')
            return f'<a href="{href}">{m["text"]}</a>'
        md = re.sub(r'\[(?P<text>[^\]]*)\]\(' + re.escape(doc_prefix) + r'(?P<page>[\w./-]+?)\.html(?:#(?P<frag>[\w.-]+))?\)', rel, md)
    return md


def _frontmatter(src: str) -> dict:
    import yaml
    s = src.strip()
    if not (s.startswith('---') and s.count('---') >= 2): return {}
    return yaml.safe_load(s.split('---')[1]) or {}


_OPT = re.compile(r'^\s*#\s*\|\s*([\w-]+)\s*:\s*(.*?)\s*$')


def _cell_opts(cell) -> tuple[dict, str]:
    "Quarto `#| key: value` options at the top of a code cell, and the source without them."
    lines, opts = cell['source'].split('\n'), {}
    while lines and _OPT.match(lines[0]):
        m = _OPT.match(lines.pop(0)); opts[m[1]] = m[2]
    return opts, '\n'.join(lines)


def _md_cell(text: str) -> dict:
    import uuid
    return {'cell_type': 'markdown', 'id': uuid.uuid4().hex[:8], 'metadata': {}, 'source': text}


def to_myst_notebook(nb: dict, doc_prefix: str = '') -> tuple[dict, dict]:
    "A processed notebook made renderable by MyST-NB; returns (notebook, frontmatter)."
    cells, fm = [], {}
    for c in nb['cells']:
        c = dict(c); c['source'] = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        if c['cell_type'] == 'raw' and not fm and (f := _frontmatter(c['source'])):
            fm = f
            head = f"# {f.get('title', '')}"
            if f.get('description'): head += f"\n\n<p class=\"lead\">{f['description']}</p>"
            cells.append(_md_cell(head)); continue
        if c['cell_type'] == 'markdown':
            cells.append(_md_cell(quarto_to_myst(c['source'], doc_prefix))); continue
        if c['cell_type'] != 'code': cells.append(c); continue
        opts, c['source'] = _cell_opts(c)
        outs = c.get('outputs', [])
        if opts.get('include') == 'false': continue
        if opts.get('output') == 'asis':  # Quarto pastes markdown output into the page: do the same
            md = ''.join(''.join(o['data']['text/markdown']) for o in outs if 'text/markdown' in o.get('data', {}))
            md = re.sub(r'^\s*---\s*\n', '', md)  # show_doc's leading rule (a transition may not open a section)
            md = re.sub(r'```python\n\s*\n', '```python\n', md)
            md = re.sub(r'\n\s*\n\s*\n```', '\n```', md)
            md = re.sub(r'\(\n\s*\n\)', '()', md)  # show_doc of a function without parameters
            if md.strip(): cells.append(_md_cell(quarto_to_myst(md, doc_prefix)))
            if opts.get('echo') == 'false': continue
            outs = [o for o in outs if 'text/markdown' not in o.get('data', {})]
        for o in outs:  # markdown outputs may carry Quarto syntax too
            if 'text/markdown' in o.get('data', {}):
                o['data']['text/markdown'] = quarto_to_myst(''.join(o['data']['text/markdown']), doc_prefix)
        c['outputs'] = outs
        tags = list(c.get('metadata', {}).get('tags', []))
        if opts.get('echo') == 'false': tags.append('remove-input')
        if opts.get('output') == 'false': tags.append('remove-output')
        if tags: c['metadata'] = {**c.get('metadata', {}), 'tags': tags}
        cells.append(c)
    nb = {**nb, 'cells': cells}
    nb.setdefault('metadata', {}).setdefault('kernelspec', {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'})
    return nb, fm


def page_name(nb_file: Path, fm: dict) -> str:
    "The page's file name without suffix: nbdev's `output-file` (e.g. audio for 01_audio), so doc links match."
    of = fm.get('output-file')
    return Path(of).stem if of else re.sub(r'^\d+[a-z]?_', '', nb_file.stem)


def stage(cfg, proc: Path, src_dir: Path) -> list[str]:
    "Write MyST-ready notebooks into `src_dir`; the home page gets the toctree. Returns the page names in order."
    if src_dir.exists(): shutil.rmtree(src_dir)
    src_dir.mkdir(parents=True)
    doc_prefix = f"{str(cfg.get('doc_host', '')).rstrip('/')}{cfg.get('doc_baseurl', '')}".rstrip('/') + '/'
    names, home, made_by = [], None, {}
    for f in _notebooks(proc):
        nb, fm = to_myst_notebook(json.loads(f.read_text()), doc_prefix if doc_prefix != '/' else '')
        name = 'index' if f.stem == 'index' else page_name(f, fm)
        if name in made_by: raise ValueError(f"{made_by[name]} and {f.name} both make the page {name}.html: rename one (or its output-file)")
        made_by[name] = f.name
        if f.stem == 'index': home = nb
        else:
            names.append(name)
            (src_dir / f'{name}.ipynb').write_text(json.dumps(nb, indent=1))
    for extra in Path(cfg.nbs_path).iterdir():  # images etc. next to the notebooks
        if extra.is_file() and extra.suffix.lower() in ('.png', '.jpg', '.jpeg', '.svg', '.gif'): shutil.copy2(extra, src_dir / extra.name)
    if home is None: home = {'cells': [_md_cell(f"# {cfg.get('title', cfg.lib_name)}")], 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    toc = "```{toctree}\n:maxdepth: 1\n:caption: Notebooks\n:hidden:\n\n" + '\n'.join(names) + "\n```"
    listing = '## Notebooks\n\n' + '\n'.join(f"- [{n}]({n}.ipynb)" for n in names)
    home['cells'] = home['cells'] + [_md_cell(listing), _md_cell(toc)]
    (src_dir / 'index.ipynb').write_text(json.dumps(home, indent=1))
    return names


# ---------------------------------------------------------------- 3. Sphinx
def sphinx_build(src_dir: Path, out: Path, doctrees: Path, strict: bool = False, quiet: bool = True) -> int:
    args = [sys.executable, '-m', 'sphinx', '-b', 'html', '-c', str(DOCS), '-d', str(doctrees), '-j', '1']
    if quiet: args.append('-q')
    if strict: args += ['-W', '--keep-going']
    return subprocess.run(args + [str(src_dir), str(out)], cwd=ROOT).returncode


def build_site(out: Path | None = None, execute: bool = True, force: bool = False, workers: int = 2,
               only: list[str] | None = None, strict: bool = False, proc: Path | None = None) -> int:
    "Build the site into `out` (default: doc_path); `proc` is the nbdev processing folder (default: _proc, a cache)."
    cfg = _cfg()
    if only:   # a name that matches no notebook (an old one, e.g. 22_generate) is an error, not a site without that page
        have = [p.name for p in _notebooks(Path(cfg.nbs_path))]
        unknown = [o for o in only if not any(p.stem != 'index' for p in _notebooks(Path(cfg.nbs_path), [o]))]
        if unknown: print(f"docs: no notebook named {unknown}; notebooks: {have}", file=sys.stderr); return 1
    out = Path(out).resolve() if out else ROOT / cfg.get('doc_path', '_docs')
    proc = Path(proc).resolve() if proc else ROOT / '_proc'
    t0 = time.perf_counter()
    results = proc_nbs(cfg, proc, execute=execute, force=force, workers=workers, only=only)
    t1 = time.perf_counter()
    src_dir = proc / '_sphinx'
    if only:  # a partial site: only the requested notebooks (and the home page)
        keep = {p.name for p in _notebooks(Path(cfg.nbs_path), only)}
        tmp = proc / '_only'
        if tmp.exists(): shutil.rmtree(tmp)
        tmp.mkdir()
        for n in keep:
            if (proc / n).exists(): shutil.copy2(proc / n, tmp / n)
        names = stage(cfg, tmp, src_dir)
    else: names = stage(cfg, proc, src_dir)
    os.environ['AUDIOKIT_DOCS_TITLE'] = str(cfg.get('title', cfg.lib_name))
    os.environ['AUDIOKIT_DOCS_VERSION'] = str(cfg.get('version', ''))
    os.environ['AUDIOKIT_DOCS_AUTHOR'] = str(cfg.get('copyright', cfg.get('author', '')))
    os.environ['AUDIOKIT_DOCS_REPO'] = str(cfg.get('git_url', ''))
    # Sphinx writes into proc/_build/html (MyST-NB puts its jupyter_execute/ beside the output folder),
    # then the result replaces `out`, which must be a previous Sphinx build or empty.
    html = proc / '_build' / 'html'
    rc = sphinx_build(src_dir, html, proc / '_build' / 'doctrees', strict=strict)
    if rc == 0:
        if out.exists() and any(out.iterdir()) and not (out / '.buildinfo').exists():
            print(f"docs: refusing to replace {out}: it is not empty and not a Sphinx build", file=sys.stderr); return 1
        if out.exists(): shutil.rmtree(out)
        shutil.copytree(html, out)
        (out / '.nojekyll').touch(exist_ok=True)
    bad = [r for r in results if not r['ok']]
    print(f"docs: {len(names) + 1} pages -> {out}  (notebooks {t1 - t0:.1f} s, sphinx {time.perf_counter() - t1:.1f} s)")
    for r in bad: print(f"docs: ERROR {r['error']}", file=sys.stderr)
    return 1 if (rc or bad) else 0


# ---------------------------------------------------------------- README
def build_readme(out: Path | None = None) -> int:
    "README.md from the home notebook: nbdev's processing (no execution), then nbconvert's markdown exporter."
    cfg = _cfg()
    import nbformat
    from nbconvert import MarkdownExporter
    nbs = Path(cfg.nbs_path)
    src = nbs / cfg.get('readme_nb', 'index.ipynb')
    if not src.exists(): src = ROOT / cfg.get('readme_nb', 'index.ipynb')
    tmp = ROOT / '_proc' / '_readme'
    tmp.mkdir(parents=True, exist_ok=True)
    r = process_notebook(str(src), str(tmp / src.name), False, ())
    if not r['ok'] and not (tmp / src.name).exists():
        print(r['error'], file=sys.stderr); return 1
    nb = json.loads((tmp / src.name).read_text())
    cells = []
    for c in nb['cells']:
        s = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        if c['cell_type'] == 'raw' and (fm := _frontmatter(s)):  # what Quarto's gfm writer puts first
            head = f"# {fm.get('title', '')}"
            if fm.get('description'): head += f"\n\n> {fm['description']}"
            cells.append(nbformat.v4.new_markdown_cell(head)); continue
        if c['cell_type'] == 'markdown':
            s = re.sub(r'<!-- WARNING: THIS FILE WAS AUTOGENERATED! DO NOT EDIT! -->\s*', '', s)
            s = _LINK_ATTR.sub(lambda m: f"[{m['text']}]({m['url']})", s)
            s = _HEADING_ATTR.sub(lambda m: m['h'], s)
            if s.strip(): cells.append(nbformat.v4.new_markdown_cell(s))
            continue
        if c['cell_type'] == 'code':
            opts, body = _cell_opts({'source': s})
            if opts.get('include') == 'false': continue
            cell = nbformat.v4.new_code_cell(body)
            cell.outputs = [nbformat.from_dict(o) for o in c.get('outputs', [])] if opts.get('output') != 'false' else []
            if opts.get('echo') == 'false': cell.metadata['transient'] = {'remove_source': True}
            cells.append(cell)
    book = nbformat.v4.new_notebook(cells=cells, metadata={'language_info': {'name': 'python'}})
    exp = MarkdownExporter()
    exp.exclude_input_prompt = exp.exclude_output_prompt = True
    body, res = exp.from_notebook_node(book)
    body = re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'
    out = Path(out) if out else ROOT / 'README.md'
    for name, data in (res.get('outputs') or {}).items():  # images from outputs, next to the README
        d = out.parent / 'README_files'
        d.mkdir(exist_ok=True); (d / name).write_bytes(data)
        body = body.replace(f']({name})', f'](README_files/{name})')
    out.write_text(body)
    print(f"readme: {src.relative_to(ROOT)} -> {out}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('what', nargs='?', default='site', choices=('site', 'readme', 'all'))
    p.add_argument('--out', help='output folder (site, default: doc_path of settings.ini) or file (readme)')
    p.add_argument('--no-execute', action='store_true', help="don't run the examples; pages keep the outputs saved in the notebooks")
    p.add_argument('--force', action='store_true', help='reprocess every notebook (ignore the _proc cache)')
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--only', nargs='*', help='build only these notebooks (e.g. 01_audio or audio) plus the home page')
    p.add_argument('--strict', action='store_true', help='Sphinx warnings are errors')
    p.add_argument('--proc', help='folder for the processed notebooks (default: _proc, reused between builds)')
    a = p.parse_args(argv)
    rc = 0
    if a.what in ('site', 'all'):
        rc |= build_site(a.out if a.what == 'site' else None, execute=not a.no_execute, force=a.force,
                         workers=a.workers, only=a.only, strict=a.strict, proc=a.proc)
    if a.what in ('readme', 'all'): rc |= build_readme(a.out if a.what == 'readme' else None)
    return rc


if __name__ == '__main__':
    sys.exit(main())
