"""The package layering the developer guide asks for, read from the source (imports, not behaviour).

Code two actors share lives in `astro/` (science) or `storage/`; an actor package imports no other
actor package, and nothing under `actors/` imports `web/`. Issue 11 moved the radio code the
calibrator and imager share (MS I/O, calibration tables, sky model, flagging, StEFCal, applying
gains) into `astro/`; before, the imager imported five modules of the calibrator and the
calibrator imported the imager's pipeline back (a circle).

storage/ is shared by the edge and two actors: it holds no HTTP server code (that is the edge's,
in web/routes/objects.py), so no actor pulls aiohttp's server in through it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ACTORS = ROOT / "actors"


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-local imports included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _actor_packages() -> list[Path]:
    return sorted(p for p in ACTORS.iterdir() if p.is_dir() and (p / "__init__.py").exists())


def test_no_actor_imports_another_actor() -> None:
    """Every actor package stands alone: what two share is in astro/ (e.g. the mosaicker reads
    images and their noise through astro.restored_image and astro.noise_map, not the variability
    detector's photometry)."""
    offenders: list[str] = []
    for pkg in _actor_packages():
        others = {f"actors.{q.name}" for q in _actor_packages() if q != pkg}
        for f in sorted(pkg.rglob("*.py")):
            for mod in _imports(f):
                if any(mod == o or mod.startswith(o + ".") for o in others):
                    offenders.append(f"{f.relative_to(ROOT)} imports {mod}")
    assert offenders == []


def test_imager_takes_the_shared_radio_code_from_astro() -> None:
    imported = set().union(*(_imports(f) for f in (ACTORS / "imager").rglob("*.py")))
    for mod in ("astro.msio", "astro.caltables", "astro.applycal", "astro.skymodel"):
        assert mod in imported, mod
    assert not (ACTORS / "calibrator" / "msio.py").exists()
    assert not (ACTORS / "calibrator" / "caltables.py").exists()


def test_nothing_under_actors_or_astro_imports_web() -> None:
    for base in (ACTORS, ROOT / "astro", ROOT / "sim"):
        for f in base.rglob("*.py"):
            assert not any(m == "web" or m.startswith("web.") for m in _imports(f)), f


def test_storage_has_no_aiohttp_dependency() -> None:
    for path in sorted((ROOT / "storage").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] in ("aiohttp", "web") for n in names), (path.name, names)
