"""The package's import arrows go one way: the tuner uses the zoo, never the reverse; common/ uses neither."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# package -> the packages its modules must not import, at module level or inside a function
FORBIDDEN = {
    "sb3_ac_plus.zoo": ("sb3_ac_plus.tuning",),
    "sb3_ac_plus.common": ("sb3_ac_plus.tuning", "sb3_ac_plus.zoo"),
}


def imported_modules(source: str, package: str) -> set[str]:
    """Every module that ``source``, a module of ``package``, imports; relative imports resolved.

    ``from a import b`` counts as importing both ``a`` and ``a.b``, since ``b`` may be a module.
    """
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            base = ".".join(part for part in (base, node.module) if part)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def is_inside(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(f"{package}.") for package in packages)


def test_the_scan_sees_every_kind_of_import() -> None:
    source = "import sb3_ac_plus.tuning.cli\ndef f():\n    from sb3_ac_plus import tuning\n    from ..tuning import cli\n"
    names = imported_modules(source, "sb3_ac_plus.zoo")
    assert {"sb3_ac_plus.tuning.cli", "sb3_ac_plus.tuning"} <= names
    assert [name for name in names if is_inside(name, ("sb3_ac_plus.tuning",))]
    assert not is_inside("sb3_ac_plus.tuning_extra", ("sb3_ac_plus.tuning",))
    relative = imported_modules("from .config import x\n", "sb3_ac_plus.zoo")
    assert relative == {"sb3_ac_plus.zoo.config", "sb3_ac_plus.zoo.config.x"}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_go_one_way(package: str) -> None:
    folder = ROOT.joinpath(*package.split("."))
    files = sorted(folder.rglob("*.py"))
    assert files
    wrong = []
    for path in files:
        module_package = ".".join(path.relative_to(ROOT).parent.parts)
        for name in sorted(imported_modules(path.read_text(), module_package)):
            if is_inside(name, FORBIDDEN[package]):
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(wrong)
