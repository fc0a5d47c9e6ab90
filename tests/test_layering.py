"""storage/ is shared by the edge and two actors: it holds no HTTP server code (that is the edge's,
in web/routes/objects.py), so no actor pulls aiohttp's server in through it."""

from __future__ import annotations

import ast

from tests.conftest import ROOT


def test_storage_has_no_aiohttp_dependency() -> None:
    for path in sorted((ROOT / "storage").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] in ("aiohttp", "web") for n in names), (path.name, names)
