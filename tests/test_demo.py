"""`memstrata demo` on the real LoCoMo data: memory blocks whose lines name their source turns."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from test_cli import cli, ok


@pytest.mark.slow
def test_demo_prints_blocks_with_source_turns(tmp_path: Path, locomo_path: Path) -> None:
    out = ok(cli("demo", "--questions", "2", "--data", str(locomo_path), db=tmp_path / "unused.db"))
    assert "LoCoMo conv-26" in out and re.search(r"stored 419 turns in [\d.]+ s \(\d+ turns/s\)", out)
    assert len(re.findall(r"^Q\d · ", out, re.M)) == 2 or out.count("gold answer:") == 2
    assert re.search(r"^[✓ ] D\d+:\d+\s+L\d ", out, re.M), "each block line names its LoCoMo turn and layer"
    summary = re.search(r"evidence turns found in the memory blocks: (\d+)/(\d+) \(2 questions", out)
    assert summary and 0 <= int(summary[1]) <= int(summary[2]) and int(summary[2]) > 0
    assert not (tmp_path / "unused.db").exists(), "the demo never touches MEMSTRATA_DB"
