"""docs/python.md runs as written: its ```python blocks, in order, in one namespace, in a
scratch directory (the tutorial writes digits.veil, keys/ and q.bin there)."""

import os
import pathlib
import re

import pytest

import veil

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "python.md"

pytestmark = pytest.mark.skipif(not veil.onnx_available(), reason="built without ONNX import")


def python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_every_python_snippet_of_the_tutorial_runs(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 10, "the tutorial lost its snippets"
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "veil_tutorial"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{DOC.name} snippet {i + 1}", "exec"), namespace)
        except Exception as e:  # name the snippet: the doc is what needs fixing
            raise AssertionError(f"docs/python.md snippet {i + 1} failed: {e!r}\n{code}") from e
    assert os.path.exists(tmp_path / "digits.veil") and os.path.exists(tmp_path / "keys" / "secret.key")
