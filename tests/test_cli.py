"""The `audiokit` command, run as a user runs it (a fresh interpreter), and its command table."""
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

import audiokit
from audiokit.cli import BENCHMARKS_BY_NAME, COMMANDS, commands_added
from audiokit.core import BENCHMARKS
from audiokit.spec import load_spec, spec_keys

ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}


def run(*args, cwd=None, env=None):
    "`audiokit ARGS` in a fresh interpreter."
    return subprocess.run([sys.executable, '-m', 'audiokit.cli', *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env or ENV, timeout=600)


def python(code: str, env=None):
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, env=env or ENV, timeout=600)


# ------------------------------------------------------------------ the command table
@pytest.fixture(scope='module')
def every_module():
    "Every module of the audiokit package, imported (an import that fails is a failure of this test)."
    return {f"audiokit.{m.name}": importlib.import_module(f"audiokit.{m.name}") for m in pkgutil.iter_modules(audiokit.__path__)}


def test_table_matches_the_modules_add_cli(every_module):
    "Every module that defines add_cli is in COMMANDS, and each entry is added by its module, with the same help line."
    owners = {name for name, mod in every_module.items() if callable(getattr(mod, 'add_cli', None)) and mod.add_cli.__module__ == name}
    added = {cmd: (mod, help_line) for mod in sorted(owners) for cmd, help_line in commands_added(mod).items()}
    missing = {k: v for k, v in added.items() if COMMANDS.get(k) != v}
    stale = {k: v for k, v in COMMANDS.items() if k not in added}
    assert not missing and not stale, (f"audiokit.cli.COMMANDS is out of step with the modules' add_cli.\n"
                                       f"entries to add or correct in nbs/99_cli.ipynb: {missing}\nentries no module adds: {stale}")
    assert {m for m, _ in COMMANDS.values()} == owners


def test_benchmark_table_matches_the_registrations(every_module):
    registered = {n: BENCHMARKS[n].__module__ for n in BENCHMARKS}
    assert registered == BENCHMARKS_BY_NAME, f"audiokit.cli.BENCHMARKS_BY_NAME should be {registered}"


# ------------------------------------------------------------------ help, version, imports
def test_version():
    r = run('--version')
    assert r.returncode == 0 and r.stdout.strip() == f"audiokit {audiokit.__version__}"


def test_help_lists_every_command_without_importing_components():
    r = run('--help')
    assert r.returncode == 0
    listed = [line.split()[0] for line in r.stdout.splitlines() if line.startswith('    ') and not line.startswith('     ')]
    assert listed == list(COMMANDS), r.stdout
    r = python("""
        import json, sys
        from audiokit.cli import build_parser
        build_parser().format_help()
        print(json.dumps([sorted(m for m in sys.modules if m.startswith('audiokit')), 'torch' in sys.modules]))""")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [['audiokit', 'audiokit.cli', 'audiokit.core'], False]


def test_subcommand_imports_only_its_module():
    # `audiokit audit` imports audiokit.splits, not the training, sweep or generation stacks
    r = python("""
        import sys
        from audiokit.cli import build_parser
        build_parser('audit')
        print(' '.join(m for m in ('audiokit.splits', 'audiokit.experiment', 'audiokit.sweep', 'audiokit.generate',
                                   'diffusers', 'papermill') if m in sys.modules))""")
    assert r.returncode == 0 and r.stdout.split() == ['audiokit.splits'], r.stdout + r.stderr


def test_demo_help_names_the_grid():
    r = run('demo', '--help')
    assert r.returncode == 0 and '--workers' in r.stdout and '--overwrite' in r.stdout and '--out' in r.stdout


# ------------------------------------------------------------------ other packages' commands (entry points)
PLUGIN = '''
import json
from audiokit.core import AudioKitError, benchmark

def add_cli(sub):
    p = sub.add_parser('hello', help='say hello')
    p.add_argument('--name', required=True)
    p.set_defaults(func=_hello)

def _hello(args):
    if args.name == 'nobody': raise AudioKitError('nobody is not a name', path='--name')
    print(f"hello {args.name}")
    return 0

def add_nothing(sub):
    sub.add_parser('other')

@benchmark('hi')
def bench_hi(data=None, answer: int = 42):
    return {'answer': answer}
'''


@pytest.fixture()
def plugin_env(tmp_path):
    "An installed distribution (a dist-info folder on PYTHONPATH) whose entry points add commands and a benchmark."
    (tmp_path / 'akplugin.py').write_text(PLUGIN)
    d = tmp_path / 'akplugin-0.1.dist-info'
    d.mkdir()
    (d / 'METADATA').write_text('Metadata-Version: 2.1\nName: akplugin\nVersion: 0.1\n')
    (d / 'entry_points.txt').write_text('[audiokit.commands]\nhello = akplugin\ntrain = akplugin\nbroken = akplugin:add_nothing\n\n'
                                        '[audiokit.benchmarks]\nhi = akplugin\n')
    return {**ENV, 'PYTHONPATH': os.pathsep.join([str(tmp_path), ENV.get('PYTHONPATH', '')]).rstrip(os.pathsep)}


def test_a_package_adds_a_command_through_an_entry_point(plugin_env, tmp_path):
    r = run('--help', env=plugin_env)
    assert r.returncode == 0 and 'hello' in r.stdout and 'added by akplugin (akplugin)' in r.stdout
    assert "ignoring akplugin's entry point 'train'" in r.stderr      # audiokit's own `train` is not replaced
    r = run('hello', '--name', 'ada', env=plugin_env)
    assert r.returncode == 0 and r.stdout.strip() == 'hello ada', r.stderr
    r = run('hello', '--name', 'nobody', env=plugin_env)
    assert r.returncode == 1 and r.stderr.strip().endswith('error: --name: nobody is not a name') and 'Traceback' not in r.stderr
    r = run('broken', env=plugin_env)
    assert r.returncode == 1 and "akplugin:add_nothing: is registered for `audiokit broken` but its add_cli adds only ['other']" in r.stderr
    r = run('train', '--help', env=plugin_env)
    assert r.returncode == 0 and '--config' in r.stdout


def test_bench_writes_out_and_refuses_to_overwrite(plugin_env, tmp_path):
    out = tmp_path / 'b.json'
    r = run('bench', 'hi', '--out', out, env=plugin_env)
    assert r.returncode == 0 and json.loads(out.read_text()) == {'hi': {'answer': 42}}, r.stderr
    r = run('bench', 'hi', '--out', out, env=plugin_env)
    assert r.returncode == 1 and 'pass --overwrite' in r.stderr and '== bench' not in r.stdout   # refused before running
    assert run('bench', 'hi', '--out', out, '--overwrite', env=plugin_env).returncode == 0


def test_bench_passes_its_options_and_refuses_unknown_ones(plugin_env, tmp_path):
    out = tmp_path / 'b.json'
    r = run('bench', 'hi', '--answer', '7', '--out', out, env=plugin_env)
    assert r.returncode == 0 and json.loads(out.read_text()) == {'hi': {'answer': 7}}, r.stderr
    r = run('bench', 'hi', '--anser', '7', env=plugin_env)
    assert r.returncode == 1 and "--anser: benchmark 'hi' takes no such option; its options: --answer" in r.stderr and '== bench' not in r.stdout
    r = run('bench', '--list', env=plugin_env)
    assert r.returncode == 0 and 'hi (akplugin)' in r.stdout and '--answer 42' in r.stdout, r.stderr
    assert all(f"{n} ({m})" in r.stdout for n, m in BENCHMARKS_BY_NAME.items())
    r = run('config', '--no-such-flag')    # other commands still refuse what they do not know
    assert r.returncode == 2 and 'unrecognized arguments: --no-such-flag' in r.stderr


def test_unknown_benchmark_is_a_clear_error():
    r = run('bench', 'no-such-bench')
    assert r.returncode == 1 and "unknown benchmark(s) ['no-such-bench']" in r.stderr and 'Traceback' not in r.stderr


# ------------------------------------------------------------------ audiokit config
def test_config_prints_the_resolved_spec(tmp_path):
    f = tmp_path / 'run.yaml'
    f.write_text('name: tiny\ntrain:\n  epochs: 2\nmodel:\n  width: 8\n')
    r = run('config', '--config', f, '-p', 'train.lr=0.01', '-p', 'splits.k=3')
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(r.stdout) == load_spec(f, ['train.lr=0.01', 'splits.k=3']).to_dict()
    got = yaml.safe_load(r.stdout)
    assert (got['name'], got['train']['epochs'], got['train']['lr'], got['model']['width'], got['splits']['k']) == ('tiny', 2, 0.01, 8, 3)
    # --out writes the same text, and refuses to replace it without --overwrite
    assert run('config', '--config', f, '-p', 'train.lr=0.01', '-p', 'splits.k=3', '--out', tmp_path / 'r.yaml').returncode == 0
    assert (tmp_path / 'r.yaml').read_text() == r.stdout
    r2 = run('config', '--out', tmp_path / 'r.yaml')
    assert r2.returncode == 1 and 'overwrite' in r2.stderr and (tmp_path / 'r.yaml').read_text() == r.stdout


def test_config_keys_lists_every_setting():
    r = run('config', '--keys', '-p', 'train.epochs=7')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [l.split('=', 1)[0] for l in lines] == spec_keys() and 'train.epochs=7' in lines


def test_config_keys_are_overrides_that_give_the_same_spec():
    "What --keys prints is the -p grammar: feeding every line back as -p gives the same spec."
    r = run('config', '--keys')
    ps = [a for l in r.stdout.splitlines() for a in ('-p', l)]
    r2 = run('config', *ps)
    assert r2.returncode == 0, r2.stderr
    assert yaml.safe_load(r2.stdout) == load_spec(None).to_dict()


@pytest.mark.parametrize('text,where', [
    ('train:\n  epochs: 2\n   lr: 0.1\n', 'line 3'),                  # bad indentation
    ('train:\n\tepochs: 2\n', "line 2, column 1: found character '\\t'"),  # a tab
    ('train:\n  epochs: [2\n', "expected ',' or ']'"),               # an unclosed list
])
def test_config_bad_yaml_names_file_line_and_problem(tmp_path, text, where):
    f = tmp_path / 'bad.yaml'
    f.write_text(text)
    r = run('config', '--config', f)
    assert r.returncode == 1 and r.stdout == '' and 'Traceback' not in r.stderr
    assert r.stderr.startswith(f'audiokit config: error: {f}: cannot parse the run spec') and where in r.stderr, r.stderr


def test_config_mistakes_name_their_source(tmp_path):
    f = tmp_path / 'typo.yaml'
    f.write_text('train:\n  epoch: 2\n')
    r = run('config', '--config', f)
    assert r.returncode == 1 and f"error: {f}: RunSpec.train: unknown setting(s) ['epoch']" in r.stderr and "'epochs'" in r.stderr
    r = run('config', '-p', 'epoch=2')
    assert r.returncode == 1 and "unknown setting 'epoch'" in r.stderr and 'train.epochs' in r.stderr
    r = run('config', '-p', 'train.epochs')
    assert r.returncode == 1 and "expected key=value, got 'train.epochs'" in r.stderr
    r = run('config', '-p', 'model.name=nosuch')
    assert r.returncode == 1 and "unknown model 'nosuch'" in r.stderr and 'cnn' in r.stderr
    r = run('config', '--config', tmp_path / 'none.yaml')
    assert r.returncode == 1 and 'none.yaml' in r.stderr and 'not found' in r.stderr


# ------------------------------------------------------------------ errors in the user's language
@pytest.fixture(scope='module')
def clips(tmp_path_factory):
    "Twelve short clips of six patients, two classes: a manifest without folds."
    d = tmp_path_factory.mktemp('clips')
    rows = []
    for g in range(6):
        for i, lab in enumerate('ab'):
            p = d / f'{lab}_{g}.wav'
            sf.write(p, 0.1 * np.random.default_rng(10 * g + i).standard_normal(4000), 4000)
            rows.append({'path': str(p), 'label': lab, 'group': f'p{g}'})
    pd.DataFrame(rows).to_csv(d / 'manifest.csv', index=False)
    return d


def test_train_errors_say_what_to_do(clips, tmp_path):
    r = run('train', '--out', tmp_path / 'o')
    assert r.returncode == 1 and 'audiokit train MANIFEST' in r.stderr and 'Traceback' not in r.stderr
    r = run('train', tmp_path / 'missing.csv', '--out', tmp_path / 'o')
    assert r.returncode == 1 and 'missing.csv' in r.stderr and 'not found' in r.stderr and 'Traceback' not in r.stderr
    r = run('train', clips / 'manifest.csv', '--fold', 7, '-p', 'splits.k=2', '--out', tmp_path / 'o')
    assert r.returncode == 1 and 'fold' in r.stderr and '7' in r.stderr and '[0, 1]' in r.stderr and 'Traceback' not in r.stderr


def test_train_on_a_manifest_of_one_fold_says_run_splits(clips, tmp_path):
    df = pd.read_csv(clips / 'manifest.csv').assign(fold=0)
    df.to_csv(tmp_path / 'one_fold.csv', index=False)
    r = run('train', tmp_path / 'one_fold.csv', '--out', tmp_path / 'o')
    assert r.returncode == 1 and 'audiokit splits' in r.stderr and 'Traceback' not in r.stderr
