"""Test-session set-up shared by the core's and the plugins' tests.

The tests use a jno cache folder of their own (``JNO_CACHE_DIR``: a temporary folder, removed
at exit, shared with the subprocesses the tests start), so the persistent compilation cache and
the ``jno plugins`` description never go to the user's ``~/.cache/jno``. Set
``JNO_COMPILATION_CACHE`` (a folder, or ``off``) to choose the compilation cache yourself."""

import atexit
import os
import shutil
import tempfile

if not os.environ.get("JNO_CACHE_DIR"):
    _cache = tempfile.mkdtemp(prefix="jno-test-cache-")
    os.environ["JNO_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, True)
