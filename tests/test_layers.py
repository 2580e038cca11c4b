"""The package's modules import only downward: no cycle, no upward import.

Every import counts, those inside functions too (a lazy import is still a
dependency).  A new module must be given a layer here.
"""

import ast
import os

import irsa_session

#: Lowest first.  A module may import only modules of lower layers; inside the
#: ``cli`` package its modules may also import each other (without a cycle).
LAYERS = [
    ["errors", "_version", "_fork", "_imports"],
    ["_background", "_otel"],
    ["_events"],
    ["config", "_redact", "_refresh", "_expired"],
    ["token", "_compat", "source"],
    ["sts", "pod_identity"],  # the sources
    ["cache", "credentials"],
    ["sessions"],
    ["chain", "_aio_impl", "_arrow_impl"],
    ["_aio", "_arrow"],
    ["_pandas"],
    ["_install", "_serve"],
    [""],  # the package itself: irsa_session/__init__.py
    ["cli"],  # the command line: builds on the public API and config
    ["__main__"],
]

PACKAGE = os.path.dirname(os.path.abspath(irsa_session.__file__))


def modules():
    """{dotted name below the package ("" for the package): path}."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            relative = os.path.relpath(os.path.join(folder, name), PACKAGE)[: -len(".py")]
            parts = relative.split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = os.path.join(folder, name)
    return found


def imports(name, path, known):
    """The package's modules that module ``name`` imports, anywhere in its code."""
    is_package = path.endswith("__init__.py")
    here = name.split(".") if name else []
    if not is_package:
        here = here[:-1]
    with open(path) as handle:
        tree = ast.parse(handle.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "irsa_session" or alias.name.startswith("irsa_session."):
                    found.add(alias.name[len("irsa_session."):] if "." in alias.name else "")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else list(here)
            elif node.module == "irsa_session" or (node.module or "").startswith("irsa_session."):
                node_module = node.module[len("irsa_session"):].lstrip(".")
                base = node_module.split(".") if node_module else []
                target = ".".join(base)
                found.update(_from(target, node.names, known))
                continue
            else:
                continue
            target = ".".join(base + (node.module.split(".") if node.module else []))
            found.update(_from(target, node.names, known))
    found.discard(name)
    return found


def _from(target, names, known):
    """``from target import names``: the submodules named, else ``target`` itself."""
    submodules = [("%s.%s" % (target, alias.name)).lstrip(".") for alias in names]
    hits = [module for module in submodules if module in known]
    if len(hits) == len(submodules):
        return hits
    return hits + [target]


def layer_of(name):
    top = name.split(".")[0] if name else ""
    for number, members in enumerate(LAYERS):
        if top in members:
            return number
    return None


def graph():
    known = modules()
    return dict((name, imports(name, path, known)) for name, path in known.items())


def test_every_module_has_a_layer():
    unplaced = sorted(name for name in modules() if layer_of(name) is None)
    assert unplaced == [], "give these modules a layer in LAYERS: %s" % unplaced


def test_no_module_imports_upward():
    upward = []
    for name, targets in graph().items():
        for target in targets:
            same_cli = name.split(".")[0] == target.split(".")[0] == "cli"
            if not same_cli and layer_of(target) >= layer_of(name):
                upward.append("%s -> %s" % (name or "irsa_session", target or "irsa_session"))
    assert sorted(upward) == []


def test_no_import_cycle():
    edges = graph()
    cycles = []

    def visit(name, path):
        for target in sorted(edges.get(name, ())):
            if target in path:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in done:
                visit(target, path + [target])
        done.add(name)

    done = set()
    for name in sorted(edges):
        if name not in done:
            visit(name, [name])
    assert cycles == []


def test_the_checks_see_imports_inside_functions():
    # A lazy import is a dependency too: the graph must contain one we know of.
    assert "_aio_impl" in graph()["_aio"]
