"""How the web side's apps depend on each other, read from their import statements (lazy ones included)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "edgeportal"


def app_imports() -> dict[str, set[str]]:
    """Each app (a folder of edgeportal/) and the other apps its modules import, migrations aside."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.glob("*/**/*.py"):
        app = path.relative_to(ROOT).parts[0]
        if "migrations" in path.parts:
            continue
        imported = graph.setdefault(app, set())
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "edgeportal" and len(parts) > 1 and (ROOT / parts[1]).is_dir() and parts[1] != app:
                    imported.add(parts[1])
    return graph


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The groups of apps that import each other, directly or around a loop (Tarjan's components)."""
    index, low, stack, found, counter = {}, {}, [], set(), [0]

    def visit(app: str) -> None:
        index[app] = low[app] = counter[0]
        counter[0] += 1
        stack.append(app)
        for other in graph.get(app, ()):
            if other not in index:
                visit(other)
                low[app] = min(low[app], low[other])
            elif other in stack:
                low[app] = min(low[app], index[other])
        if low[app] == index[app]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == app:
                    break
            if len(group) > 1:
                found.add(frozenset(group))

    for app in sorted(graph):
        if app not in index:
            visit(app)
    return found


def test_core_imports_no_app_and_every_app_takes_its_infrastructure_from_core():
    graph = app_imports()
    assert graph["core"] == set()
    assert not (ROOT / "jobs" / "queueing.py").exists()  # the queue client lives in core


def test_no_app_imports_another_that_imports_it_back():
    # Issue 13 removed the last cycle. Bottom to top: core, sources, accounts (roles), prompts (templates and
    # their outputs' declarations), delivery, latency (records and pages), jobs, outputs (above jobs: it connects
    # jobs/hooks.py), monitoring (/metrics; the metrics themselves are core's), boards, then openai_api, lab,
    # tuning and demo (the demo data).
    assert cycles(app_imports()) == set()


def module_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_text_functions_and_the_guard_are_pure():
    # The guard took its patterns from the database itself, so prompts' guard -> models -> variables -> guard
    # was a cycle; now its rules come in as an argument (prompts.selectors.guard_rules).
    for path in (ROOT / "core" / "text.py", ROOT / "prompts" / "guard.py"):
        imported = module_imports(path)
        assert not {name for name in imported if name.split(".")[0] == "django"}, path
        assert not {name for name in imported if name.startswith("edgeportal.prompts")}, path


def test_the_inference_core_imports_neither_django_nor_celery_nor_the_web_side():
    # The Celery bootstep lives beside the Celery app (edgeportal/worker_step.py), the lab's simulator beside
    # its pages (edgeportal/lab/simulator.py): inference/ is the model runtime and the scheduler, nothing more.
    for path in (ROOT.parent / "inference").rglob("*.py"):
        roots = {name.split(".")[0] for name in module_imports(path)}
        assert not roots & {"django", "celery", "edgeportal"}, path


def test_the_planner_reads_no_clock_and_no_redis():
    imported = module_imports(ROOT.parent / "inference" / "planning.py")
    assert not imported & {"redis", "time", "inference.admission", "inference.worker"}
    assert not {name for name in imported if name.split(".")[:2] == ["inference", "store"]}


# Where Redis is touched (issue 13, one store): the store package, inference/store/, owns every key (its table in
# inference/store/__init__.py). Every other module calls the store with plain values.
REDIS_OWNERS = "inference/store/"
# Modules that hold a client without touching a key: core/queueing.py builds the clients and hands one to
# JobEvents and WebStore, as the worker hands its queue's.
CLIENT_HOLDERS = {
    "edgeportal/core/queueing.py": {".redis", "redis_client()", "async_redis_client()"},
    "inference/worker.py": {".redis"},
}
REDIS_CALLS = {"register_script", "pipeline", "scan_iter"}


def redis_touches(path: Path) -> set[str]:
    """What a module does with Redis itself: reads a client's `.redis`, calls through it (`.redis.get`), runs
    a script or a pipeline, or makes a client of its own."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Attribute) and node.value.attr == "redis":
                found.add(f".redis.{node.attr}")
            if node.attr == "redis" or node.attr in REDIS_CALLS:
                found.add(f".{node.attr}")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("redis_client", "async_redis_client"):
            found.add(f"{node.func.id}()")
    return found


def test_only_the_store_touches_redis_keys():
    # A new Redis key goes in the store, inference/store/ (and in its table, inference/store/__init__.py).
    repo = ROOT.parent
    touches = {}
    for path in [*ROOT.rglob("*.py"), *(repo / "inference").rglob("*.py")]:
        name = path.relative_to(repo).as_posix()
        if name.startswith(REDIS_OWNERS) or "migrations" in path.parts:
            continue
        found = redis_touches(path) - CLIENT_HOLDERS.get(name, set())
        if found:
            touches[name] = sorted(found)
    assert touches == {}
