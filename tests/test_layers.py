"""The layers run one way, and this test keeps them so: the domain (`recordings`) imports neither
framework nor anything built on it; the pipeline (`recordings_dagster`) and the API
(`recordings_api`) never import each other or the tooling (`recordings_cli`); and no product
package leans on Dagster's private modules, which change without notice between releases.

Every import counts: at module level, inside functions, and under `if TYPE_CHECKING:`, because a
newcomer reading any of them learns a dependency. The modules are read with `ast`, not imported,
so a forbidden import is found even where it is never executed.
"""

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PRODUCT_PACKAGES = ("recordings", "recordings_api", "recordings_dagster", "recordings_cli")

# Package -> top-level modules it must never import. "dagster" stands for Dagster's whole
# family (dagster, dagster_postgres, dagster_webserver, ...).
FORBIDDEN = {
    "recordings": ("dagster", "litestar", "recordings_dagster", "recordings_api", "recordings_cli"),
    "recordings_api": ("recordings_dagster", "recordings_cli"),
    "recordings_dagster": ("recordings_api", "recordings_cli"),
}


@dataclass(frozen=True)
class Import:
    """One imported module (and, for `from m import a, b`, the names), and where."""

    module: str
    names: tuple[str, ...]
    where: str  # path:line, relative to the folder holding the package

    def modules(self) -> list[str]:
        """The module and what `from` imports of it, each of which may be a module itself."""
        return [self.module, *(f"{self.module}.{name}" for name in self.names)]

    def __str__(self) -> str:
        if self.names:
            return f"{self.where}: from {self.module} import {', '.join(self.names)}"
        return f"{self.where}: import {self.module}"


def _module_name(relative: Path) -> str:
    parts = relative.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The absolute module of a `from ... import`, relative ones resolved against `importer`."""
    if node.level == 0:
        return node.module or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(package: str, root: Path = REPO_ROOT) -> Iterator[Import]:
    """Every import in every module of `package` (a folder under `root`), wherever in the
    module it is written."""
    for path in sorted((root / package).rglob("*.py")):
        relative = path.relative_to(root)
        importer = _module_name(relative)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(relative))
        for node in ast.walk(tree):
            where = f"{relative}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Import(alias.name, (), where)
            elif isinstance(node, ast.ImportFrom):
                module = _resolve(node, importer, path.name == "__init__.py")
                yield Import(module, tuple(alias.name for alias in node.names), where)


def _top_level(module: str) -> str:
    top = module.split(".")[0]
    return "dagster" if top.startswith("dagster_") else top


def _is_private_dagster(module: str) -> bool:
    parts = module.split(".")
    return _top_level(module) == "dagster" and any(part.startswith("_") for part in parts[1:])


def test_the_layout_holds_every_product_package() -> None:
    for package in PRODUCT_PACKAGES:
        assert (REPO_ROOT / package / "__init__.py").is_file(), package
        assert any(imports_of(package)), package


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_or_beside_it(package: str) -> None:
    forbidden = FORBIDDEN[package]
    offending = [
        str(found) for found in imports_of(package) if _top_level(found.module) in forbidden
    ]
    assert not offending, f"{package} must not import {', '.join(forbidden)}:\n" + "\n".join(
        offending
    )


@pytest.mark.parametrize("package", PRODUCT_PACKAGES)
def test_no_product_package_imports_a_private_dagster_module(package: str) -> None:
    offending = [
        str(found)
        for found in imports_of(package)
        if any(_is_private_dagster(module) for module in found.modules())
    ]
    assert not offending, (
        f"{package} imports Dagster's private modules (use the public API, or a local constant "
        "with a test pinning it to Dagster's value):\n" + "\n".join(offending)
    )


def test_the_walk_sees_imports_in_functions_and_type_checking_blocks(tmp_path: Path) -> None:
    """The reader itself: imports a module-level scan would miss count, relative ones too."""
    package = tmp_path / "layered"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from .. import helpers\n")
    (package / "sub" / "mod.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from dagster._core.storage.tags import WILL_RETRY_TAG\n"
        "def run() -> None:\n"
        "    import litestar.testing\n"
        "    from .sibling import thing\n"
        "    from dagster import _check\n"
    )
    found = {str(found) for found in imports_of("layered", root=tmp_path)}
    mod = Path("layered", "sub", "mod.py")
    assert found == {
        f"{Path('layered', 'sub', '__init__.py')}:1: from layered import helpers",
        f"{mod}:1: from typing import TYPE_CHECKING",
        f"{mod}:3: from dagster._core.storage.tags import WILL_RETRY_TAG",
        f"{mod}:5: import litestar.testing",
        f"{mod}:6: from layered.sub.sibling import thing",
        f"{mod}:7: from dagster import _check",
    }
    assert _is_private_dagster("dagster._core.storage.tags")
    assert _is_private_dagster("dagster._check")
    assert _is_private_dagster("dagster_shared._check")
    assert not _is_private_dagster("dagster.AssetKey")
    assert _top_level("dagster_postgres.utils") == "dagster"
