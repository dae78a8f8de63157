"""Reading docs/*.md as the tests of tutorial and cookbook need it, and running the real CLI.

Marks the pages use (so a reader sees plain Markdown and a test knows what is what):
- a line ``File `PATH`:`` before a fenced block: that block is the whole file PATH;
- a line ``Output (excerpt):`` before a fenced block: each of its lines appears in the output
  of the command just before (``…`` stands for any text);
- a fenced ``sh`` block: its lines that start with ``wbsrun `` are commands; a trailing
  ``# exit code N`` is the exit code they claim (0 when none is said);
- a line ``wbsrun form (`NAME`):`` before a fenced ``yaml`` block: a cookbook recipe.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"

_FILE = re.compile(r"^File `([^`]+)`:\s*$")
_OUTPUT = re.compile(r"^Output \(excerpt\):\s*$")
_RECIPE = re.compile(r"^wbsrun form \(`([^`]+)`\):\s*$")
_EXIT = re.compile(r"#\s*exit code (\d+)\s*$")


@dataclass(frozen=True)
class Block:
    """A fenced block: its info string, text, the marked name (file, recipe) and its line."""

    kind: str  # "file", "output", "recipe", "sh" or "other"
    lang: str
    text: str
    name: str
    line: int


@dataclass(frozen=True)
class Command:
    """One `wbsrun …` line of an `sh` block."""

    argv: list[str]
    exit_code: int
    line: int


def blocks(page: Path) -> list[Block]:
    """Every fenced block of `page`, in order, with the mark of the line before it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    mark: tuple[str, str] = ("other", "")
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            lang = line[3:].strip()
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            kind, name = mark
            if kind == "other" and lang == "sh":
                kind = "sh"
            text = "\n".join(lines[i + 1 : end]) + "\n"
            found.append(Block(kind, lang, text, name, i + 2))
            mark = ("other", "")
            i = end + 1
            continue
        for pattern, kind in ((_FILE, "file"), (_OUTPUT, "output"), (_RECIPE, "recipe")):
            matched = pattern.match(line)
            if matched:
                mark = (kind, matched.group(1) if matched.groups() else "")
                break
        else:
            if line.strip():
                mark = ("other", "")
        i += 1
    return found


def commands(block: Block) -> list[Command]:
    """The `wbsrun` commands of an `sh` block (other lines are the reader's shell: skipped)."""
    found = []
    for offset, raw in enumerate(block.text.splitlines()):
        if not raw.startswith("wbsrun "):
            continue
        claimed = _EXIT.search(raw)
        argv = shlex.split(raw.partition("#")[0])[1:]
        found.append(Command(argv, int(claimed.group(1)) if claimed else 0, block.line + offset))
    return found


def wbsrun(argv: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process (the same interpreter, so the same wbsrun)."""
    return subprocess.run(
        [sys.executable, "-m", "wbsrun", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def excerpt_pattern(line: str) -> re.Pattern[str]:
    """A line of an output excerpt as a pattern: `…` is any text, the rest literal."""
    parts = [re.escape(part) for part in line.strip().split("…")]
    return re.compile(".*".join(parts))


def missing_lines(excerpt: str, output: str) -> list[str]:
    """The excerpt's lines that no line of `output` contains."""
    out_lines = output.splitlines()
    return [
        line
        for line in excerpt.splitlines()
        if line.strip() and not any(excerpt_pattern(line).search(o) for o in out_lines)
    ]
