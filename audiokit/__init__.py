__version__ = "0.1.0"

# %% auto 0
__all__ = []

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")

# %% ../nbs/19_estimator.ipynb #15e554aa
_LAZY = {'AudioClassifier': 'audiokit.estimator', 'PatientGroupKFold': 'audiokit.splits', 'RunSpec': 'audiokit.spec',
         'load_spec': 'audiokit.spec', 'LabelSpace': 'audiokit.labels', 'run_fold': 'audiokit.experiment', 'train_model': 'audiokit.experiment'}

def __getattr__(name: str):
    "The package's main names, imported on first use."
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audiokit' has no attribute {name!r}")