"""The README's environment-variable table is the one generated from Settings."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings
from app.settings_doc import BEGIN, END, block, main, replace_block, table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_table_is_current() -> None:
    text = README.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert block() in text, "run: python -m app.settings_doc --write README.md"


def test_every_setting_has_a_row_and_a_meaning() -> None:
    rows = table().splitlines()[2:]
    assert len(rows) == len(Settings.model_fields)
    for name, row in zip(Settings.model_fields, rows, strict=True):
        assert row.startswith(f"| `INNERSPACE_{name.upper()}`")
        assert row.split(" | ")[2].strip(" |"), f"{name} has no description"


def test_write_replaces_only_the_block(tmp_path: Path) -> None:
    doc = tmp_path / "R.md"
    doc.write_text(f"intro\n{BEGIN}\nstale\n{END}\noutro\n")
    assert main(["--write", str(doc)]) == 0
    assert doc.read_text() == f"intro\n{block()}\noutro\n"
    assert replace_block(doc.read_text()) == doc.read_text()
