"""Which code may import which: models/ and sip/ never import server/, and the conversation core
(server/core/) imports only itself and the standard library, so that it stays pure and testable on a
virtual clock. Every import counts, also those inside functions and under TYPE_CHECKING."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    module: str  # absolute, dotted

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}:{self.line}"


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path) -> list[Import]:
    """Every module `path` imports, in line order: relative imports resolved, and
    `importlib.import_module` / `__import__` calls with a literal name."""
    return sorted(_imports(path, root), key=lambda i: i.line)


def _imports(path: Path, root: Path) -> Iterator[Import]:
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield Import(path, node.lineno, module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                yield Import(path, node.lineno, node.args[0].value)


def modules_under(root: Path, folder: str) -> list[Path]:
    return sorted((root / folder).rglob("*.py"))


def _is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(root: Path) -> list[str]:
    found = []
    for folder in ("models", "sip"):
        for path in modules_under(root, folder):
            found += [f"{i.where(root)}: {folder}/ imports {i.module} (server/ is off limits)"
                      for i in imports(path, root) if _is_within(i.module, "server")]
    for path in modules_under(root, "server/core"):
        for i in imports(path, root):
            top = i.module.partition(".")[0]
            if not (_is_within(i.module, "server.core") or top in sys.stdlib_module_names):
                found.append(f"{i.where(root)}: the core imports {i.module} (only itself and the standard "
                             "library)")
    return found


def test_models_and_sip_keep_off_server_and_the_core_imports_only_itself_and_the_stdlib() -> None:
    assert modules_under(ROOT, "server/core"), "the core is not where this test looks"
    problems = violations(ROOT)
    assert not problems, "import contract broken:\n" + "\n".join(problems)


def test_the_contract_catches_each_kind_of_import(tmp_path: Path) -> None:
    files = {
        "models/ok.py": "import numpy\nfrom models import engines\n",
        "models/bad.py": "import os\n\n\ndef f():\n    from server.config import Config\n",
        "sip/pkg/__init__.py": "from ...server import runtime\n",
        "sip/late.py": "import importlib\nimportlib.import_module('server.serve')\n",
        "server/core/__init__.py": "",
        "server/core/ok.py": "import re\nfrom . import events\nfrom server.core.story import Story\n",
        "server/core/bad.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import numpy\n"
                              "from .. import runtime\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert violations(tmp_path) == [
        "models/bad.py:5: models/ imports server.config (server/ is off limits)",
        "sip/late.py:2: sip/ imports server.serve (server/ is off limits)",
        "sip/pkg/__init__.py:1: sip/ imports server (server/ is off limits)",
        "server/core/bad.py:3: the core imports numpy (only itself and the standard library)",
        "server/core/bad.py:4: the core imports server (only itself and the standard library)",
    ]
