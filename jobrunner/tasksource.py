"""What a task's module says about the task, read from its source without importing it.

`jobrunner submit` never runs application code (importing a module runs it), so the
check at submit reads the module's file: whether it defines the name, and whether a call
fits the parameters of a plain `def`. What the source cannot settle is let through and
left to the daemon, whose failure to import, find or call the task is not retried
(worker/child.py): a module-level `__getattr__`, `from x import *`, names made through
`globals()`, a decorator other than `@task` (it may change the signature), a name bound
twice, a compiled module, a namespace package.

Cost (`jobrunner submit` runs it every time): a module whose text does not hold the name
is refused without parsing (the common typo); a function defined once, by a plain `def` at
the top of the module, is found by searching the text and only its header is parsed
(about 0.1 ms); anything else parses the whole file (`_ast`, about 2 ms for 300 lines).
"""

from __future__ import annotations

import functools
import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    import _ast  # at run time imported where a source is parsed: its first use costs ~1 ms
    from collections.abc import Sequence

# Text that can bind module attributes in ways the source does not show by name.
DYNAMIC = ("import *", "import*", "__getattr__", "globals(", "setattr(", "sys.modules", "exec(")
MAX_SOURCE_BYTES = 1 << 20  # larger modules are not parsed: let through
HEADER_LINES = 30  # a def's header longer than this is left to the full parse


def module_source(module: str, paths: Sequence[str]) -> str | bool:
    """Where `module` is, looking at files only (no parent package is imported): the path
    of its Python source; True when found with no source to read (compiled, a namespace
    package, built in); False when not found."""
    parts = module.split(".")
    for base in paths:
        if not base or not os.path.isdir(base):
            continue
        folder = os.path.join(base, *parts[:-1])
        last = os.path.join(folder, parts[-1])
        if os.path.isfile(last + ".py"):
            return last + ".py"
        if os.path.isdir(last):
            init = os.path.join(last, "__init__.py")
            return init if os.path.isfile(init) else True
        if os.path.isdir(folder) and any(
            name.startswith(parts[-1] + ".") and name.endswith((".so", ".pyd", ".pyc"))
            for name in os.listdir(folder)
        ):
            return True
    import sys

    return module in sys.builtin_module_names


def check_call(
    path: str, module: str, attr: str, npositional: int | None, keywords: Sequence[str]
) -> str | None:
    """Why `module:attr` called with `npositional` arguments and `keywords` cannot work,
    judged from the source at `path`; None when it may (or the source cannot tell).
    `npositional` None: only whether `attr` is there."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    found = _lookup(path, stat.st_mtime_ns, stat.st_size, module, attr)
    if found is None or isinstance(found, str):
        return found
    if npositional is None:
        return None
    problem = call_problem(found, npositional, keywords)
    return None if problem is None else f"{attr}() {problem}"


@functools.lru_cache(maxsize=256)
def _lookup(
    path: str, mtime_ns: int, size: int, module: str, attr: str
) -> str | _ast.arguments | None:
    """What the source at `path` says of `attr`: why it is missing (text), the parameters
    of its plain `def`, or None (it is there, or the source cannot tell). Cached by the
    file's modification time and size: a client preparing many jobs parses it once."""
    name = attr.split(".")[0]
    if size > MAX_SOURCE_BYTES:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    missing = f"module {module!r} has no attribute {name!r}"
    if os.path.basename(path) == "__init__.py":
        folder = os.path.dirname(path)  # a submodule is an attribute once imported
        if os.path.exists(os.path.join(folder, name + ".py")) or os.path.isdir(
            os.path.join(folder, name)
        ):
            return None
    if name not in text:
        return None if _dynamic(text) else missing
    plain = _plain_def(text, name)
    if plain is not None:
        return plain
    import _ast

    try:
        tree = compile(data, path, "exec", _ast.PyCF_ONLY_AST)
    except (SyntaxError, ValueError):
        return None  # the daemon's import will say what is wrong, and not retry
    bound: list[_ast.AST] = []
    dynamic = _top_level_bindings(getattr(tree, "body", []), name, bound)
    if not bound:
        # also bound where this walk does not look: `global NAME` in a function, `NAME :=`
        elsewhere = re.search(
            rf"\bglobal\b[^\n]*\b{re.escape(name)}\b|\b{re.escape(name)}\s*:=", text
        )
        return None if dynamic or elsewhere or _dynamic(text) else missing
    if len(bound) != 1 or attr != name:
        return None
    node = bound[0]
    if not isinstance(node, _ast.FunctionDef | _ast.AsyncFunctionDef):
        return None
    if not all(_is_task_decorator(d) for d in node.decorator_list):
        return None
    return node.args


def _dynamic(text: str) -> bool:
    return any(marker in text for marker in DYNAMIC)


def _plain_def(text: str, name: str) -> _ast.arguments | None:
    """The parameters of `def name(...)` when the text shows plainly that it is the one
    binding of `name`: a `def` at column 0, no other line that may bind the name, no
    decorator but `@task`. None when that is not plain: the full parse decides."""
    start = 0 if text.startswith(f"def {name}(") else text.find(f"\ndef {name}(") + 1
    if start == 0 and not text.startswith(f"def {name}("):
        return None
    own = start + 4  # where the def's own name is
    at = text.find(name)
    seen = 0
    while at >= 0:
        end = at + len(name)
        word = (at == 0 or not _ident(text[at - 1])) and (end == len(text) or not _ident(text[end]))
        if word and at != own:
            seen += 1
            if seen > 200 or _may_bind(text, at, end):
                return None
        at = text.find(name, end)
    lines = text[:start].splitlines()
    for line in reversed(lines):  # decorators: only jobrunner's @task keeps the signature
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("@"):
            expression = line[1:].split("#")[0].strip()
            call = expression.partition("(")[0]
            if (call == "task" or call.endswith(".task")) and (
                "(" not in expression or expression.endswith(")")
            ):
                continue
            return None
        if line[:1] in ")]}":  # maybe the end of a decorator's call over several lines
            return None
        break
    import _ast

    header = text[start:].split("\n", HEADER_LINES)[:HEADER_LINES]
    for count in range(1, len(header) + 1):
        snippet = "\n".join(header[:count])
        for candidate in (
            (snippet + "\n    pass", snippet) if count == 1 else (snippet + "\n    pass",)
        ):
            try:
                tree = compile(candidate, "<def>", "exec", _ast.PyCF_ONLY_AST)
            except (SyntaxError, ValueError):
                continue
            node = getattr(tree, "body", [None])[0]
            if isinstance(node, _ast.FunctionDef):
                return node.args
    return None


def _ident(char: str) -> bool:
    return char.isalnum() or char == "_" or char == "."


def _may_bind(text: str, at: int, end: int) -> bool:
    """Whether the occurrence of the name at `at` may bind it (an assignment, an import,
    a def or class, a loop or `as` target, `global`): taken broadly, since a wrong yes
    only costs the full parse."""
    line_start = text.rfind("\n", 0, at) + 1
    line_end = text.find("\n", end)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    after = text[end : end + 3].lstrip()
    if after.startswith((":=", ",")) or (after.startswith("=") and not after.startswith("==")):
        return True
    stripped = line.lstrip()
    if stripped.startswith(text[at:end]) and after.startswith(":"):
        return True  # an annotated assignment
    binders = ("def ", "async ", "class ", "global ", "nonlocal ", "for ", "del ", "with ")
    return "import" in line or " as " in line or stripped.startswith(binders)


def _top_level_bindings(body: list[_ast.stmt], name: str, out: list[_ast.AST]) -> bool:
    """Append to `out` each statement of `body` (and of the blocks inside it that run at
    module level: if, try, with, for, while) that binds `name`; returns True when the
    module's names cannot all be seen (`from x import *`)."""
    import _ast

    dynamic = False
    for stmt in body:
        if isinstance(stmt, _ast.FunctionDef | _ast.AsyncFunctionDef | _ast.ClassDef):
            if stmt.name == name:
                out.append(stmt)
            continue
        if isinstance(stmt, _ast.Import | _ast.ImportFrom):
            for alias in stmt.names:
                if alias.name == "*":
                    dynamic = True
                elif (alias.asname or alias.name.split(".")[0]) == name:
                    out.append(stmt)
            continue
        targets: list[_ast.AST] = []
        if isinstance(stmt, _ast.Assign):
            targets = list(stmt.targets)
        elif isinstance(stmt, _ast.AnnAssign | _ast.AugAssign | _ast.For | _ast.AsyncFor):
            targets = [stmt.target]
        elif isinstance(stmt, _ast.With | _ast.AsyncWith):
            targets = [i.optional_vars for i in stmt.items if i.optional_vars is not None]
        if any(_names_in(t, name) for t in targets):
            out.append(stmt)
        blocks = [getattr(stmt, field, None) for field in ("body", "orelse", "finalbody")]
        blocks += [handler.body for handler in getattr(stmt, "handlers", ())]
        for block in blocks:
            if isinstance(block, list):
                dynamic = _top_level_bindings(block, name, out) or dynamic
    return dynamic


def _names_in(target: _ast.AST, name: str) -> bool:
    import _ast

    if isinstance(target, _ast.Name):
        return target.id == name
    if isinstance(target, _ast.Tuple | _ast.List):
        return any(_names_in(t, name) for t in target.elts)
    if isinstance(target, _ast.Starred):
        return _names_in(target.value, name)
    return False


def _is_task_decorator(node: _ast.expr) -> bool:
    """`@task`, `@task(...)`, `@jobrunner.task(...)`: jobrunner's own, which keeps the
    function's signature."""
    import _ast

    if isinstance(node, _ast.Call):
        node = node.func
    if isinstance(node, _ast.Name):
        return node.id == "task"
    return isinstance(node, _ast.Attribute) and node.attr == "task"


def call_problem(params: _ast.arguments, npositional: int, keywords: Sequence[str]) -> str | None:
    """Why a call with `npositional` arguments and `keywords` does not fit `params`, in
    Python's own words ("missing 1 required positional argument: 'x'"), or None."""
    positional = [a.arg for a in (*params.posonlyargs, *params.args)]
    posonly = {a.arg for a in params.posonlyargs}
    first_default = len(positional) - len(params.defaults)
    kwonly = [a.arg for a in params.kwonlyargs]
    if npositional > len(positional) and params.vararg is None:
        took = len(positional)
        return (
            f"takes {took} positional argument{'s' if took != 1 else ''} "
            f"but {npositional} {'were' if npositional != 1 else 'was'} given"
        )
    for keyword in keywords:
        if keyword in positional and keyword not in posonly:
            if positional.index(keyword) < npositional:
                return f"got multiple values for argument {keyword!r}"
        elif keyword not in kwonly and params.kwarg is None:
            return f"got an unexpected keyword argument {keyword!r}"
    for kind, names in (
        (
            "positional",
            [
                p
                for i, p in enumerate(positional)
                if npositional <= i < first_default and (p in posonly or p not in keywords)
            ],
        ),
        (
            "keyword-only",
            [
                p
                for p, default in zip(kwonly, params.kw_defaults, strict=True)
                if default is None and p not in keywords
            ],
        ),
    ):
        if names:
            count = len(names)
            listed = ", ".join(repr(p) for p in names)
            return f"missing {count} required {kind} argument{'s' if count != 1 else ''}: {listed}"
    return None
