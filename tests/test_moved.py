"""The old module names of the flat layout (issue 26) keep working for one release: the
same module object under the new name, a DeprecationWarning naming the new place, the
module's own spec (importlib.resources reads it), and mock.patch through the old name
patching the code that runs.  Each check runs in a fresh interpreter, where no other test
has imported the old name before (a second import warns no more)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from irconstyle import _moved


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c",
                           textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


def test_an_old_name_is_the_new_module_with_a_warning() -> None:
    out = _run(f"""
        import importlib, warnings
        import irconstyle
        warnings.simplefilter("always")
        for old, new in {_moved.MOVED!r}.items():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                module = importlib.import_module(old)
            real = importlib.import_module(new)
            assert module is real or old in {sorted(_moved.SPLIT)!r}, (old, module, real)
            assert real.__spec__.name == new, real.__spec__
            [w] = [w for w in caught if issubclass(w.category, DeprecationWarning)]
            assert new in str(w.message), w.message
        """)
    assert out.returncode == 0, out.stderr[-3000:]


def test_the_new_names_warn_nothing() -> None:
    """Every new module imports under ``-W error::DeprecationWarning`` (what nbval's
    stderr check needs of the notebooks)."""
    imports = "\n".join(f"import {new}" for new in sorted(set(_moved.MOVED.values())))
    out = _run(imports + "\nimport irconstyle.runtime.environment, irconstyle.runtime.memory\n")
    assert out.returncode == 0, out.stderr[-3000:]


def test_old_names_of_names_that_moved_out_of_their_module() -> None:
    out = _run("""
        import warnings
        warnings.simplefilter("ignore", DeprecationWarning)
        from irconstyle.summary import environment, model_table, provenance
        assert environment.__module__ == "irconstyle.runtime.environment"
        assert provenance.__module__ == "irconstyle.runtime.environment"
        assert model_table.__module__ == "irconstyle.nets.model_table"
        from irconstyle.release import load_release_checkpoint
        from irconstyle.weights import WeightsError, check_zip_crc, tensors_sha256
        from irconstyle.evidence import ledger
        from irconstyle.evidence.synthesis import main
        assert ledger().claims
        """)
    assert out.returncode == 0, out.stderr[-3000:]


def test_mock_patch_through_an_old_name_patches_the_code_that_runs() -> None:
    out = _run("""
        import warnings
        from unittest import mock
        warnings.simplefilter("ignore", DeprecationWarning)
        from irconstyle.evaluation import tiling
        with mock.patch("irconstyle.tiling.available_memory_bytes", lambda: 123):
            assert tiling.available_memory_bytes() == 123
        assert tiling.available_memory_bytes() != 123
        """)
    assert out.returncode == 0, out.stderr[-3000:]
