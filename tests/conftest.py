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
