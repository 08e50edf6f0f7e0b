"""The README's vending paragraph, verbatim: a real `sts serve --demo`, its printed `export`
lines pasted into a shell, then the README's curl commands."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port

README = Path(__file__).parents[2] / "README.md"


def vending_blocks() -> tuple[list[str], str]:
    """The sh block after "`./run` creates ..." and the "Lost the keys?" command."""
    text = README.read_text()
    part = text[text.index("`./run` creates"):text.index("`./run demo` shows")]
    (block,) = re.findall(r"```sh\n(.*?)```", part, re.S)
    commands = re.split(r"(?<!\\)\n", block.strip())
    lost = re.search(r"Lost the keys\? Make a new one:\s*`([^`]+)`", part)
    assert lost is not None
    return commands, lost.group(1)


@pytest.mark.slow
def test_readme_purchase_verbatim(tmp_path: Path) -> None:
    assert shutil.which("curl") and shutil.which("bash"), "the README needs curl and bash"
    commands, lost = vending_blocks()
    port = free_port()
    sts = str(Path(sys.executable).parent / "sts")
    db = tmp_path / "var" / "sts-vending.sqlite3"
    db.parent.mkdir()
    log = tmp_path / "serve.out"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sts, "serve", "--demo", "--db", str(db), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)  # polling for readiness
        exports = [line for line in log.read_text().splitlines() if line.startswith("export ")]
        assert len(exports) == 6
        script = "\n".join(exports) + "\n" + "\n".join(
            c.replace("127.0.0.1:8062", f"127.0.0.1:{port}") for c in commands)
        res = subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True,
                             timeout=60, env=os.environ | {"PATH": os.environ["PATH"]})
        assert res.returncode == 0, res.stderr
        decoder, text, answers = json.JSONDecoder(), res.stdout, []
        while text.strip():  # curl prints the two answers back to back
            obj, end = decoder.raw_decode(text.strip())
            answers.append(obj)
            text = text.strip()[end:]
        lookup, sale = answers
        assert lookup["quote"]["amount"] == "50.00" and lookup["can_vend"] is True
        token = sale["tokens"][0]["token"]
        assert len(token) == 20 and token.isdigit() and sale["receipt"]["amount"] == "50.00"
        # "Lost the keys?": the command works against the same database
        args = lost.removeprefix("./run sts ").replace("var/sts-vending.sqlite3", str(db))
        made = subprocess.run(["bash", "-c", f"{sts} {args} --json"], capture_output=True,
                              text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["api_key"].startswith("stsk_")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
