"""The README's CLI tour works verbatim on a fresh clone (issue 7).

The tour's shell block is taken from README.md as written and run by bash in an empty
directory, with only `./run sts` replaced by the environment's `sts` executable (what
`./run sts` execs after creating the environment; running `./run` itself per command would
only add `uv sync` each time).  No STA table file, no shared vectors: the tour is
self-contained.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
STS = Path(sys.executable).with_name("sts")


def section_block(heading: str) -> str:
    text = README.read_text()
    start = text.index(f"## {heading}")
    match = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert match, f"no sh block under {heading}"
    return match.group(1)


def test_tour_commands_are_all_runnable_as_written() -> None:
    block = section_block("A short tour of the CLI")
    commands = [line for line in block.splitlines()
                if line.strip() and not line.startswith(("#", "{", "EOF", "M=", "export "))]
    for line in commands:
        assert line.startswith(("./run sts ", "cat > ")), f"not runnable from a clone: {line}"


@pytest.mark.slow
def test_tour_runs_verbatim(tmp_path: Path) -> None:
    block = section_block("A short tour of the CLI")
    script = "set -euo pipefail\n" + block.replace("./run sts ", f'"{STS}" ')
    env = {k: v for k, v in os.environ.items() if not k.startswith("STS_")}
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Traceback" not in out + done.stderr and "internal" not in out
    assert "1. 4193 5388 4503 6483 5866" in out  # the token the README shows
    decoded = [json.loads(x) for x in out.splitlines() if x.startswith('{"class"')]
    assert decoded and decoded[0]["units"] == "25.6" and decoded[0]["tid"] == 6484920
    lines = [json.loads(x) for x in out.splitlines() if x.startswith('{"id"')]
    by_id = {x["id"]: x for x in lines}
    assert set(by_id) == {"r1", "r2", "r3", "t1", "t2", "t3"}
    assert by_id["r2"]["error"] == "invalid_amount" and by_id["t2"]["error"] == "crc"
    assert by_id["t1"]["units"] == "25.6" and "tokens" in by_id["r1"]
    assert "exit 1: r2 failed on purpose" in out and "exit 1: t2 is mistyped" in out
    assert "valid: PAN 600727000000000009" in out


def test_demo_mentioned_in_the_readme_runs() -> None:
    assert "`./run demo`" in README.read_text()
    done = subprocess.run([str(STS), "demo"], capture_output=True, text=True, timeout=120,
                          check=False, env={k: v for k, v in os.environ.items()
                                            if not k.startswith("STS_")})
    assert done.returncode == 0 and "credit 25.6 kWh" in done.stdout
