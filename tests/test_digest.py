"""The code digest behind the library-code rerun trigger: what the code does counts, its comments do not."""
from __future__ import annotations

from deltaspace.digest import code_digest

MODULE = '''"""A module."""

def f(x):
    """Twice x."""
    return 2 * x
'''


def digest_of(tmp_path, text: str) -> str:
    (tmp_path / "pkg").mkdir(exist_ok=True)
    (tmp_path / "pkg" / "m.py").write_text(text)
    return code_digest(tmp_path, "pkg")


def test_comments_docstrings_and_blank_lines_do_not_count(tmp_path):
    before = digest_of(tmp_path, MODULE)
    reworded = MODULE.replace("A module.", "A module, reworded.").replace("Twice x.", "Doubles x.")
    assert digest_of(tmp_path, "# header\n\n" + reworded.replace("return", "# why\n    return")) == before
    assert digest_of(tmp_path, MODULE.replace('    """Twice x."""\n', "")) == before


def test_code_changes_count(tmp_path):
    before = digest_of(tmp_path, MODULE)
    assert digest_of(tmp_path, MODULE.replace("2 * x", "3 * x")) != before
    assert digest_of(tmp_path, MODULE + "\nLIMIT = 1\n") != before
    assert digest_of(tmp_path, MODULE.replace('"""Twice x."""', '"""Twice x."""\n    x = abs(x)')) != before


def test_a_new_file_in_a_folder_counts(tmp_path):
    before = digest_of(tmp_path, MODULE)
    (tmp_path / "pkg" / "extra.py").write_text("Y = 1\n")
    assert code_digest(tmp_path, "pkg") != before
