import os
os.environ.setdefault('MPLBACKEND', 'Agg')
# one BLAS/torch thread per process, for this process and the `audiokit` / papermill subprocesses tests start (see DEVELOPERS.md, Threads)
os.environ.setdefault('OMP_NUM_THREADS', '1')

from hypothesis import settings

# Property tests explore the same examples on every run: CI must not turn red by the luck of a draw.
# (`HYPOTHESIS_PROFILE=explore pytest ...` searches new examples locally.)
settings.register_profile('ci', derandomize=True, deadline=None, print_blob=True)
settings.register_profile('explore', deadline=None, print_blob=True)
settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'ci'))


import pytest


@pytest.fixture(scope='session')
def speech_rows(tmp_path_factory):
    """Factory of generated speech manifests: `speech_rows(**keywords of fixtures.make_speech_fixture)` -> rows `path`
    (absolute), `label`, `group` (the speaker), in a fresh folder each call."""
    import pandas as pd
    from audiokit.fixtures import make_speech_fixture
    def make(**kw):
        csv = make_speech_fixture(tmp_path_factory.mktemp('speech'), **kw)
        df = pd.read_csv(csv).rename(columns={'speaker': 'group'})
        df['path'] = [str((csv.parent / p).resolve()) for p in df['path']]
        return df[['path', 'label', 'group']]
    return make
