"""The API's shape holds: routes only route (see `api.routes`).

- all routers are registered in one place (`api.routes.ROUTERS`) and no route there is
  shadowed by one registered before it — the one pair whose order matters is proven;
- a route module never imports another route module (the dashboard calls `api.services`);
- no SQL in `api/`: every statement lives in `store/`;
- the progress dict is built once (`Experiment.progress`) and the finished statuses are
  written out once (`store.vocabulary`), in Python, HTML and JavaScript alike.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

from api.routes import ROUTERS
from api.routes import experiments as experiment_routes
from api.routes import reports as report_routes

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "api"


def _sample_path(route: APIRoute) -> str:
    """A concrete path the route answers: "1" for each parameter, "a/b" for a path one."""
    path = re.sub(r"\{[^}:]+:path\}", "a/b", route.path)
    return re.sub(r"\{[^}]+\}", "1", path)


def shadowed(routers) -> list[tuple[str, str, str]]:
    """(method, path, earlier path) for every route that a route registered before it
    (same method, matching path) would answer instead."""
    seen: list[APIRoute] = []
    found = []
    for router in routers:
        for route in router.routes:
            assert isinstance(route, APIRoute), f"{route!r}: include routers in ROUTERS, flat"
            sample = _sample_path(route)
            assert route.path_regex.match(sample), (route.path, sample)
            for earlier in seen:
                for method in route.methods & earlier.methods:
                    if earlier.path_regex.match(sample):
                        found.append((method, route.path, earlier.path))
            seen.append(route)
    return found


def test_no_route_is_shadowed_by_one_registered_before_it():
    assert shadowed(ROUTERS) == []


def test_the_one_order_that_must_hold_is_reports_before_experiments():
    # Swapped, GET /v1/experiments/{experiment_id} would read "compare" or "table" as an
    # id (a 422).
    order = list(ROUTERS)
    i, j = order.index(report_routes.router), order.index(experiment_routes.router)
    order[i], order[j] = order[j], order[i]
    found = shadowed(order)
    for path in ("/v1/experiments/compare", "/v1/experiments/table"):
        assert ("GET", path, "/v1/experiments/{experiment_id}") in found


def test_the_app_registers_exactly_the_routers_of_api_routes():
    from api.app import create_app
    from common.settings import Settings

    calls = [
        str(p.relative_to(ROOT)) for p in sorted(API.rglob("*.py"))
        for _ in re.finditer(r"\.include_router\(", p.read_text())
    ]  # fmt: skip
    assert calls == ["api/app.py"], "routers are included in one place: api.app over ROUTERS"
    documented = set(create_app(Settings(_env_file=None)).openapi()["paths"])
    ours = {
        r.path.replace(":path}", "}") for router in ROUTERS for r in router.routes if r.include_in_schema
    }
    assert documented == ours


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _has_routes(module_name: str) -> bool:
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False  # `from pkg import name` of a non-module name
    if getattr(module, "__path__", None) is not None:
        return False  # a package: a registry of routers, not a route module
    return any(isinstance(v, APIRouter) and v.routes for v in vars(module).values())


@pytest.mark.parametrize(
    "path", [p for p in _modules(API / "routes") if p.name != "__init__.py"], ids=lambda p: p.name
)
def test_a_route_module_imports_no_other_route_module(path: Path):
    me = _module_name(path)
    others = sorted(
        name for name in _imports(path)
        if name.startswith("api.routes") and name != me and _has_routes(name)
    )  # fmt: skip
    assert others == [], f"{me} imports route modules {others}: call api.services instead"


SQL = [
    re.compile(r"(?<![\w.])(select|update|delete|insert|text|func)\("),
    re.compile(r"\bsession\.(execute|scalars?|query|get)\("),
    re.compile(r"^\s*from sqlalchemy import ", re.MULTILINE),
    re.compile(r"^\s*import sqlalchemy", re.MULTILINE),
]


@pytest.mark.parametrize("path", _modules(API), ids=lambda p: str(p.relative_to(API)))
def test_no_sql_in_the_api(path: Path):
    text = path.read_text()
    hits = [m.group(0) for pattern in SQL for m in pattern.finditer(text)]
    assert hits == [], f"{path.relative_to(ROOT)} holds SQL {hits}: move it to store/"


def _sources(*folders: str, suffixes=(".py", ".html", ".js")) -> list[Path]:
    return [
        p for folder in folders for p in sorted((ROOT / folder).rglob("*"))
        if p.suffix in suffixes and "__pycache__" not in p.parts
    ]  # fmt: skip


def test_the_progress_dict_is_built_in_one_place():
    # Every answer with a progress takes `Experiment.progress`; the API builds none itself.
    builders = [
        str(p.relative_to(ROOT)) for p in _sources("api", suffixes=(".py",))
        if re.search(r"[\"']total_epochs[\"']\s*:|current_epoch", p.read_text())
    ]  # fmt: skip
    assert builders == []


def test_the_finished_statuses_are_written_out_once():
    status = r"(\"{0}\"|'{0}'|JobStatus\.{0})"
    finished = re.compile(status.format("succeeded") + r"\s*,\s*" + status.format("failed"))
    where = [
        str(p.relative_to(ROOT)) for p in _sources("api", "store", "cli")
        if finished.search(p.read_text())
    ]  # fmt: skip
    assert where == ["store/vocabulary.py"]
