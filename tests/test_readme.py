"""Every ```python block of README.md runs, in order, so the snippets cannot rot."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_snippets():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_snippet_runs(index, tmp_path, monkeypatch):
    # each snippet runs on its own in a fresh namespace, in a scratch folder
    monkeypatch.chdir(tmp_path)
    code = BLOCKS[index]
    program = compile(code, f"README.md python block {index}", "exec")
    exec(program, {"__name__": "__readme__"})
