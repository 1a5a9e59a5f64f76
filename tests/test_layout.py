"""The package's architecture, read from its source: which wing imports which, no cycles, no dead links.

The chat (``chat.protocol``, ``chat.tcp``, ``chat.udp``, ``chat.clientbase``,
``chat.console``) imports nothing of the lab or of the report; the lab imports
the chat but not the report; the report may import both.  Every import counts:
at the top of a module, inside a function, or under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "chat"
CHAT_WING = ("chat.protocol", "chat.tcp", "chat.udp", "chat.clientbase", "chat.console")
LAB_WING = ("chat.lab",)
REPORT_WING = ("chat.reporting",)
TOP = ("chat.cli", "chat.demo", "chat.__main__")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str) -> str:
    """The module a dotted name refers to: itself if it is one, else the module that defines it."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports_of(module: str) -> set[str]:
    """Every module of the package that ``module`` imports, wherever the import statement is."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {resolve(alias.name) for alias in node.names if alias.name.split(".")[0] == "chat"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "chat":
            found |= {resolve(f"{node.module}.{alias.name}") for alias in node.names}
    found.discard(module)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def in_wing(module: str, wing: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in wing)


def test_the_reader_finds_the_wings_and_their_imports():
    assert {"chat.tcp.server", "chat.tcp.client", "chat.udp.server", "chat.udp.client", "chat.protocol.framing",
            "chat.lab.naive", "chat.lab.bench", "chat.reporting.render"} <= set(MODULES)
    assert "chat.tcp.session" in GRAPH["chat.tcp.server"]  # a top-level import
    assert "chat.tcp.session" in GRAPH["chat.tcp.registry"]  # under TYPE_CHECKING
    assert "chat.reporting.transcript" in GRAPH["chat.reporting.render"]  # inside a function


@pytest.mark.parametrize("module", [name for name in MODULES if in_wing(name, CHAT_WING)])
def test_the_chat_imports_nothing_of_the_lab_or_the_report(module):
    wrong = {imported for imported in GRAPH[module]
             if in_wing(imported, LAB_WING + REPORT_WING + TOP)}
    assert not wrong, f"{module} imports {sorted(wrong)}"


@pytest.mark.parametrize("module", [name for name in MODULES if in_wing(name, LAB_WING)])
def test_the_lab_imports_nothing_of_the_report(module):
    wrong = {imported for imported in GRAPH[module] if in_wing(imported, REPORT_WING + TOP)}
    assert not wrong, f"{module} imports {sorted(wrong)}"


@pytest.mark.parametrize("module", [name for name in MODULES if in_wing(name, ("chat.protocol",))])
def test_the_protocol_is_pure(module):
    """Sans I/O: no socket, thread, selector or clock below chat.protocol, and nothing of the package above it."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    stdlib = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    stdlib |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not stdlib & {"socket", "threading", "selectors", "time", "asyncio", "select"}
    assert all(in_wing(imported, ("chat.protocol",)) for imported in GRAPH[module])


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle():
    """A package ``__init__`` that imports its modules is not a cycle with them; anything else is."""
    graph = {module: {imported for imported in targets if not module.startswith(imported + ".")}
             for module, targets in GRAPH.items()}
    assert cycles(graph) == []


def test_no_module_uses_another_modules_private_names():
    """``from chat.x import _name`` or ``module._name`` across modules: a private name is its module's own."""
    offenders = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("chat"):
                offenders += [f"{module}: {node.module}.{alias.name}" for alias in node.names
                              if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert offenders == []


def notebook_markdown(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")


DOCUMENTS = ["README.md", "report/README.md", "report/README.ru.md", "report/README.md.tmpl", "report/README.ru.md.tmpl",
             *sorted(str(path.relative_to(ROOT)) for path in (ROOT / "notebooks").glob("*.ipynb"))]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_relative_link_resolves(document):
    path = ROOT / document
    text = notebook_markdown(path) if path.suffix == ".ipynb" else path.read_text(encoding="utf-8")
    links = [target for target in LINK.findall(text) if not target.startswith(("http://", "https://", "mailto:", "#"))]
    assert links or document.startswith("report/README.ru"), f"{document} has no links to check"
    missing = [target for target in links if not (path.parent / target.split("#", 1)[0]).exists()]
    assert missing == [], f"{document} links to missing {missing}"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_no_document_names_a_module_that_moved(document):
    path = ROOT / document
    text = path.read_text(encoding="utf-8")
    old = re.findall(r"chat/(?:server|client|session|outbox|limits|protocol|names|udp|udpclient|naive|loadgen|usergroup|"
                     r"udpgroup|harness|bench|blaster|netloss|soak|stats|plots|report|reporttext|reporttables|terminal|"
                     r"transcript|lab)\.py\b", text)
    assert old == [], f"{document} still names {sorted(set(old))}"


def test_listings_name_code_by_qualified_name():
    """A template's listing names a module and an object, so moving a file needs no template edit."""
    for template in ("report/README.md.tmpl", "report/README.ru.md.tmpl"):
        listings = re.findall(r"listing\(\"([^\"]+)\"\)", (ROOT / template).read_text(encoding="utf-8"))
        assert listings, f"{template} has no listings"
        for qualified in listings:
            module, _, attribute = qualified.partition(":")
            assert module in MODULES and attribute, f"{template}: {qualified} is not module:object"


def test_the_build_it_yourself_notebook_is_the_same_code_in_english_and_russian():
    english, russian = (json.loads((ROOT / "notebooks" / name).read_text(encoding="utf-8"))["cells"]
                        for name in ("02-build-a-chat-server.ipynb", "02-build-a-chat-server.ru.ipynb"))
    code = lambda cells: [("".join(cell["source"]), cell["metadata"]) for cell in cells if cell["cell_type"] == "code"]
    assert code(english) == code(russian)
    prose = lambda cells: ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown"]
    assert len(prose(english)) == len(prose(russian))
    assert all(re.search("[а-яё]{4}", text) for text in prose(russian)), "a Russian cell is not in Russian"
    exercises = [source for source, _ in code(english) if source.startswith("# NBVAL_SKIP")]
    assert len(exercises) == 3  # after steps 2, 3 and 6, each followed by a worked answer nbval runs
