"""Layers import one way: no module of scheduler_app imports a layer above its own.

The imports are read from the source (ast), so nothing is imported and no module's
import-time side effects run. Every import counts, those inside functions too (a
lazy import is still a dependency), except those under `if TYPE_CHECKING:`, which
exist for annotations only.

LAYERS is the one table of the layers, lowest first: the modules of each, the layers
it may import (its own included) and why. A new module must find its place in it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

APP = "scheduler_app"
APP_DIR = Path(__file__).resolve().parents[1] / APP


@dataclass(frozen=True)
class Layer:
    name: str
    #: Modules of the layer, dotted below scheduler_app ("" is the package itself);
    #: a package stands for its submodules too.
    modules: tuple[str, ...]
    #: Layers this one may import, its own included.
    may_import: tuple[str, ...]
    why: str


BASE = ("base",)
BELOW_SERVICES = (*BASE, "pure", "handlers", "models", "infra", "runtime")
BELOW_SURFACES = (*BELOW_SERVICES, "services")

LAYERS = (
    Layer(
        "base",
        (
            "exceptions",
            "conf",
            "choices",
            "storable",
            "controls",
            "signals",
            "redis_client",
            "outages",
            "runtime.threads",
        ),
        BASE,
        "Errors, settings, choices and plain helpers everything may use: importing "
        "anything else of the app would make a cycle with its first user. The list "
        "of background threads (runtime.threads) is here: every layer starts its "
        "threads through it. So is the outage log (outages), which every user of "
        "the database or Redis reports to.",
    ),
    Layer(
        "pure",
        ("schedules", "expressions"),
        (*BASE, "pure"),
        "Pure Python (cron parsing, triggers, the expression evaluator): no models, "
        "services, admin or API, so they are tested without a database.",
    ),
    Layer(
        "handlers",
        ("handlers", "tasklog", "caps"),
        (*BASE, "pure", "handlers"),
        "Finding and calling handler code, the task_log API handlers call, and the "
        "caps of what they return or raise: handlers know nothing of tasks or "
        "executions.",
    ),
    Layer(
        "models",
        ("models",),
        (*BASE, "models"),
        "Models are the bottom of the Django layers: every layer above uses them, "
        "so they may use only errors, settings and constants.",
    ),
    Layer(
        "infra",
        ("db", "locks", "notify", "livelog"),
        (*BASE, "pure", "handlers", "models", "infra"),
        "Storage and messaging: hand-written SQL, locks, notifications, live logs. "
        "No use cases: services decide, these carry out.",
    ),
    Layer(
        "runtime",
        ("runtime",),
        (*BASE, "pure", "handlers", "models", "infra", "runtime"),
        "Machinery the services use (threads, event loop, leases, invocation): "
        "it runs what the services decide and so cannot import them.",
    ),
    Layer(
        "services",
        ("services", "selectors"),
        BELOW_SURFACES,
        "Use cases and shared reads: the admin, the API, the commands, the public "
        "Python API and the engine call them; they never call those back.",
    ),
    Layer(
        "engine",
        ("engine",),
        (*BELOW_SURFACES, "engine"),
        "The scheduler loop and its executors: they fire and run through the "
        "services; only the processes that run them (entry points) import them.",
    ),
    Layer(
        "public",
        ("scheduler",),
        (*BELOW_SURFACES, "public"),
        "The public Python API (add_cron_job ...): a thin surface over the "
        "services, used by projects; nothing of the app imports it.",
    ),
    Layer(
        "web",
        ("admin", "api", "forms", "templatetags"),
        (*BELOW_SURFACES, "web"),
        "The admin and the REST API: they call services and selectors, never "
        "engine internals (a web process runs no scheduler).",
    ),
    Layer(
        "entry",
        ("", "apps", "checks", "management", "celery"),
        (*BELOW_SURFACES, "engine", "public", "web", "entry"),
        "What a process starts from (app config, system checks, commands, Celery "
        "entry points): the top, so it may import every layer.",
    ),
)

#: Back edges that exist today and belong to someone's next move. Each entry is
#: (importing module, imported module) and says why it is still here; remove it
#: when the move is done (the test fails on an entry that no longer occurs).
ALLOWED_BACK_EDGES: dict[tuple[str, str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(APP_DIR).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _app_modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for path in sorted(APP_DIR.rglob("*.py"))
        if "migrations" not in path.relative_to(APP_DIR).parts
    }


MODULES = _app_modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, except those in an `if TYPE_CHECKING:` block."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _within_app(dotted: str) -> str | None:
    """ "scheduler_app.models" -> "models"; None for a module outside the app."""
    if dotted == APP:
        return ""
    if dotted.startswith(APP + "."):
        return dotted[len(APP) + 1 :]
    return None


def imports_of(module: str) -> set[str]:
    """The app modules `module` imports (dotted below scheduler_app)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [_within_app(alias.name) for alias in node.names]
        else:
            if node.level:
                parts = [APP, *filter(None, package.split("."))]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            within = _within_app(base)
            if within is None:
                continue
            # `from . import checks` imports the module scheduler_app.checks.
            targets = [
                name if name in MODULES else within
                for alias in node.names
                for name in [".".join(filter(None, (within, alias.name)))]
            ]
        found.update(target for target in targets if target is not None)
    found.discard(module)
    return found


def layer_of(module: str) -> Layer:
    """The layer whose most specific module entry covers `module`."""
    best: tuple[int, Layer] | None = None
    for layer in LAYERS:
        for entry in layer.modules:
            covers = module == entry or entry == "" or module.startswith(entry + ".")
            depth = len(entry.split(".")) if entry else 0
            if covers and (best is None or depth > best[0]):
                best = (depth, layer)
    assert best is not None, module
    return best[1]


def _back_edges() -> dict[tuple[str, str], str]:
    edges = {}
    for module in MODULES:
        layer = layer_of(module)
        for imported in imports_of(module):
            target = layer_of(imported)
            if target.name not in layer.may_import:
                edges[(module, imported)] = "%s -> %s" % (layer.name, target.name)
    return edges


def test_the_table_names_known_layers_lowest_first() -> None:
    names = [layer.name for layer in LAYERS]
    assert len(set(names)) == len(names)
    for position, layer in enumerate(LAYERS):
        assert layer.name in layer.may_import, layer.name
        assert set(layer.may_import) <= set(names), layer.name
        above = set(names[position + 1 :])
        assert not above & set(layer.may_import), (layer.name, above)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_has_a_layer(module: str) -> None:
    # The package itself ("") is in "entry"; any other module must be placed
    # explicitly, not by that fallback.
    layer = layer_of(module)
    explicit = any(
        entry and (module == entry or module.startswith(entry + "."))
        for entry in layer.modules
    )
    assert module == "" or explicit, (
        "%s is in no layer of LAYERS: add it where it belongs" % module
    )


def test_no_module_imports_a_layer_above_its_own() -> None:
    edges = _back_edges()
    unexpected = {
        edge: why for edge, why in edges.items() if edge not in ALLOWED_BACK_EDGES
    }
    assert not unexpected, "\n".join(
        "%s imports %s (%s)" % (module, imported, why)
        for (module, imported), why in sorted(unexpected.items())
    )


def test_every_allowed_back_edge_still_exists() -> None:
    """An allowance outlives its back edge only by mistake: remove it with the edge."""
    gone = set(ALLOWED_BACK_EDGES) - set(_back_edges())
    assert not gone, "remove from ALLOWED_BACK_EDGES: %s" % sorted(gone)


def test_the_reader_sees_lazy_relative_and_package_imports() -> None:
    # apps.py imports checks lazily (`from . import checks`) and the engine's
    # Celery executor; the API admin takes UserAPIKey from models.
    assert {"checks", "conf", "engine.celery_executor"} <= imports_of("apps")
    assert "models" in imports_of("api.admin")
    assert imports_of("models") == {"choices"}


@pytest.mark.parametrize("name", ["tasks.py", "scheduler.py"])
def test_no_two_modules_share_a_name_that_means_different_things(name: str) -> None:
    """A task admin, Celery tasks and the task services once were all tasks.py."""
    found = sorted(
        str(path.relative_to(APP_DIR))
        for path in APP_DIR.rglob(name)
        if "migrations" not in path.parts
    )

    assert len(found) <= 1, found


# The audit trail (issue 16): the services write it, every entry point says who acts.

#: The services that change a task or act on it: each takes `origin` and records it.
ORIGIN_SERVICES = frozenset(
    {
        "task_create",
        "task_update",
        "task_delete",
        "tasks_delete",
        "tasks_set_status",
        "tasks_pause",
        "tasks_resume",
        "tasks_enable",
        "tasks_disable",
        "task_pause",
        "task_resume",
        "task_request_run",
        "tasks_request_run",
        "execution_cancel",
        "executions_cancel",
        "lock_force_release",
        "tasks_import_from_apscheduler",
        "tasks_ensure_declared",
    }
)
#: Manager and queryset methods that write rows.
WRITES = frozenset(
    {
        "create",
        "bulk_create",
        "get_or_create",
        "update_or_create",
        "update",
        "bulk_update",
        "delete",
    }
)


def _calls(module: str) -> list[ast.Call]:
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _called_name(call: ast.Call) -> str:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return ""


def _is_audit_entry_manager(node: ast.expr) -> bool:
    """`AuditEntry.objects` (or `models.AuditEntry.objects`), filtered or not."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        node = node.func.value
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "objects"
        and (
            (isinstance(node.value, ast.Name) and node.value.id == "AuditEntry")
            or (
                isinstance(node.value, ast.Attribute)
                and node.value.attr == "AuditEntry"
            )
        )
    )


def audit_writes(module: str) -> list[int]:
    """The lines of `module` that write audit entries: audit_record, AuditEntry(...),
    or a writing method of AuditEntry.objects."""
    lines = []
    for call in _calls(module):
        name = _called_name(call)
        if name in ("audit_record", "AuditEntry") or (
            name in WRITES
            and isinstance(call.func, ast.Attribute)
            and _is_audit_entry_manager(call.func.value)
        ):
            lines.append(call.lineno)
    return lines


def test_nothing_writes_an_audit_entry_outside_the_service_layer() -> None:
    found = {
        module: lines
        for module in MODULES
        if layer_of(module).name != "services" and (lines := audit_writes(module))
    }
    assert not found, (
        "Audit entries are written by services (audit_record, in the change's "
        "transaction) only: %s" % found
    )


def test_the_audit_reader_sees_the_writes_it_looks_for() -> None:
    assert audit_writes("services.audit")  # AuditEntry(...) and bulk_create
    assert audit_writes("services.tasks")  # audit_record


def test_every_call_of_a_service_that_changes_a_task_says_who_acts() -> None:
    """Each defaults to PYTHON (trusted code) for tests and scripts; inside the app
    every caller (admin, API, commands, the Python API, the engine, the services
    themselves) passes its origin, so no entry point is recorded as another."""
    missing = [
        "%s:%d %s()" % (module, call.lineno, _called_name(call))
        for module in MODULES
        for call in _calls(module)
        if _called_name(call) in ORIGIN_SERVICES
        and not any(keyword.arg == "origin" for keyword in call.keywords)
    ]
    assert not missing, "pass origin=: %s" % missing
