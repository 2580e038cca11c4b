"""Run a function when a module is imported: at once if it is, else right after its import.

What ``install()`` patches (aiobotocore, pandas) is patched without importing it: a
``sys.meta_path`` watcher asks the other finders for the module and wraps the
loader they return, so that the function runs right after the module's code.  A
process that never imports the module never loads it.
"""

import logging
import sys
import threading

__all__ = ["when_imported"]

logger = logging.getLogger("irsa_session")

_waiting = {}  # module name -> the functions to run once it is imported
_lock = threading.Lock()


def when_imported(name, function):
    """Call ``function()`` once module ``name`` is imported (now, if it is)."""
    with _lock:
        if name not in sys.modules:
            _waiting.setdefault(name, []).append(function)
            if not any(isinstance(finder, _ImportWatch) for finder in sys.meta_path):
                sys.meta_path.insert(0, _ImportWatch())
            return
    # Imported already, or being imported by another thread: wait for it, holding no lock.
    __import__(name)
    function()


def _imported(name):
    with _lock:
        functions = _waiting.pop(name, [])
        if not _waiting:
            sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _ImportWatch)]
    for function in functions:
        try:
            function()
        except Exception as err:  # the module's import must succeed whatever happens here
            logger.warning("irsa_session could not patch %s: %s: %s", name, type(err).__name__, err)


class _ImportWatch(object):
    """A ``sys.meta_path`` finder for the modules waited for; it finds nothing itself."""

    def find_spec(self, name, path=None, target=None):
        if name not in _waiting:
            return None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or isinstance(finder, _ImportWatch) or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                if hasattr(spec.loader, "exec_module"):
                    spec.loader = _RunAfter(spec.loader, name)
                return spec
        return None

    def invalidate_caches(self):
        pass


class _RunAfter(object):
    """A loader that runs another loader, then the functions waiting for the module."""

    def __init__(self, loader, name):
        self._loader = loader
        self._name = name

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        module.__loader__ = module.__spec__.loader = self._loader  # nothing of ours stays
        _imported(self._name)

    def __getattr__(self, name):
        return getattr(self._loader, name)
