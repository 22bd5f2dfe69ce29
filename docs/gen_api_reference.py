"""Generate docs/api.md from the docstrings, so the API reference cannot drift.

    python docs/gen_api_reference.py          # rewrite docs/api.md
    python docs/gen_api_reference.py --check  # exit 1 if docs/api.md is stale

tests/test_docs.py runs the check, and uses :func:`public_api` to check that every public
name has a docstring.

What is documented: every name in ``yolo2retina.__all__`` and in the ``__all__`` of each
module in :data:`MODULES`. A name is documented once, in the module that defines it; the
other modules that export it (``yolo2retina`` itself, ``yolo2retina.formats``) link there.
Constants are documented by the ``#:`` comment above them, as Sphinx does.

The page is plain Markdown for GitHub. Signatures are ```` ```text ```` blocks and doctest
examples ```` ```python-console ```` blocks (highlighted by GitHub), which ``ruff format``
leaves alone: docstring examples are shown as written.
"""

from __future__ import annotations

import argparse
import ast
import enum
import functools
import importlib
import inspect
import re
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

OUT = Path(__file__).with_name("api.md")
PACKAGE = "yolo2retina"

#: The public modules, in reading order: data types, formats, datasets, model, results.
MODULES = (
    "yolo2retina.annotations",
    "yolo2retina.target",
    "yolo2retina.boxes",
    "yolo2retina.image",
    "yolo2retina.image_header",
    "yolo2retina.formats",
    "yolo2retina.formats.registry",
    "yolo2retina.formats.cache",
    "yolo2retina.formats.base",
    "yolo2retina.formats.data_yaml",
    "yolo2retina.formats.yolo",
    "yolo2retina.formats.yolo_writer",
    "yolo2retina.formats.darknet",
    "yolo2retina.formats.voc",
    "yolo2retina.formats.voc_writer",
    "yolo2retina.formats.coco",
    "yolo2retina.formats.coco_writer",
    "yolo2retina.dataset",
    "yolo2retina.synthetic",
    "yolo2retina.check",
    "yolo2retina.convert",
    "yolo2retina.split",
    "yolo2retina.stats",
    "yolo2retina.outputs",
    "yolo2retina.augment",
    "yolo2retina.box_transforms",
    "yolo2retina.anchors",
    "yolo2retina.backbones",
    "yolo2retina.weights",
    "yolo2retina.model",
    "yolo2retina.model_spec",
    "yolo2retina.losses",
    "yolo2retina.checkpoint",
    "yolo2retina.choices",
    "yolo2retina.train_config",
    "yolo2retina.train",
    "yolo2retina.train_recipe",
    "yolo2retina.train_resume",
    "yolo2retina.run_folder",
    "yolo2retina.train_fit",
    "yolo2retina.train_loop",
    "yolo2retina.train_setup",
    "yolo2retina.run_meta",
    "yolo2retina.coco_metric",
    "yolo2retina.confusion",
    "yolo2retina.evaluation",
    "yolo2retina.prediction",
    "yolo2retina.tiling",
    "yolo2retina.predictor",
    "yolo2retina.onnx_export",
    "yolo2retina.onnx_runtime",
    "yolo2retina.score_threshold",
    "yolo2retina.counts",
    "yolo2retina.prediction_writers",
    "yolo2retina.predict_folder",
    "yolo2retina.plots",
    "yolo2retina.plots.boxes",
    "yolo2retina.plots.curves",
    "yolo2retina.plots.pr",
    "yolo2retina.plots.histogram",
    "yolo2retina.atomic",
    "yolo2retina.device",
    "yolo2retina.errors",
)

#: Modules with an ``__all__`` that are left out: the CLI, fit's torchrun helpers and internals.
NOT_DOCUMENTED = (
    "yolo2retina.cli",
    "yolo2retina.distributed",
    "yolo2retina.coco_matching",  # coco_map's array kernels
    "yolo2retina.train_run",  # fit's internal steps
    "yolo2retina.formats.yolo_layout",  # image <-> label path rules of the YOLO reader
    "yolo2retina.formats.voc_record",  # the VOC reader's record and value rules
    "yolo2retina.formats.voc_plain",  # the VOC reader's tree-free path for plain files
    "yolo2retina.formats.coco_msgspec",  # the COCO reader's msgspec path for large files
)

#: Descriptions of constants that cannot carry a ``#:`` comment where they are exported.
DATA_DOCS = {"yolo2retina.__version__": "The version of the installed package (PEP 440)."}
#: Constants whose value is left out of the page (it changes with every release).
HIDE_VALUE = frozenset({"yolo2retina.__version__"})

#: Google-style section titles; the first group holds ``name: description`` entries.
ENTRY_SECTIONS = frozenset({"Args", "Arguments", "Attributes", "Keyword Args", "Raises"})
TEXT_SECTIONS = frozenset(
    {"Example", "Examples", "Note", "Notes", "Returns", "Warning", "Warnings", "Yields"}
)

ROLE = r":(?:py:)?(attr|class|const|data|exc|func|meth|mod|obj):`(~?)([^`]+)`"
INLINE = re.compile(rf"``(.+?)``|{ROLE}")
ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")
SIGNATURE_WIDTH = 88


@dataclass(frozen=True)
class Entry:
    """One documented object: a module-level name, or a method or property of a class."""

    module: str  #: the module whose section documents it
    name: str  #: ``name`` or ``Class.member``
    obj: Any  #: the object (for a property, the property)
    kind: str  #: "class", "function", "data", "method", "classmethod", "staticmethod", "property"

    @property
    def qualname(self) -> str:
        """The dotted path, e.g. ``yolo2retina.target.Target.from_yolo``."""
        return f"{self.module}.{self.name}"

    @property
    def function(self) -> Any:
        """The function behind a method or property (the object itself otherwise)."""
        if isinstance(self.obj, property):
            return self.obj.fget
        return getattr(self.obj, "__func__", self.obj)


# -- collecting ---------------------------------------------------------------------------


def _modules() -> dict[str, ModuleType]:
    return {name: importlib.import_module(name) for name in (PACKAGE, *MODULES)}


def _public_names(module: ModuleType) -> list[str]:
    return list(module.__all__)


@functools.cache
def _assignments(module: ModuleType) -> dict[str, ast.Assign | ast.AnnAssign]:
    """The top-level ``NAME = ...`` and ``NAME: T = ...`` statements of a module."""
    tree = ast.parse(inspect.getsource(module))
    found: dict[str, ast.Assign | ast.AnnAssign] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = stmt
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            found[stmt.target.id] = stmt
    return found


def _is_routine(obj: Any) -> bool:
    return inspect.isclass(obj) or inspect.isfunction(obj)


def _home(name: str, obj: Any, modules: dict[str, ModuleType]) -> str:
    """The module that documents ``name``: where it is defined, else the first exporting it."""
    exporting = [
        m
        for m in (*MODULES, PACKAGE)
        if name in _public_names(modules[m]) and getattr(modules[m], name) is obj
    ]
    if _is_routine(obj) and obj.__module__ in exporting:
        return str(obj.__module__)
    if not _is_routine(obj):
        for m in exporting:
            if name in _assignments(modules[m]):
                return m
    return exporting[0]


def _members(cls: type) -> Iterator[tuple[str, Any, str]]:
    """``(name, member, kind)`` for the public methods and properties a class defines."""
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            yield name, member, "property"
        elif isinstance(member, classmethod):
            yield name, member, "classmethod"
        elif isinstance(member, staticmethod):
            yield name, member, "staticmethod"
        elif inspect.isfunction(member):
            yield name, member, "method"


def public_api() -> list[Entry]:
    """Every documented object, in page order: module by module, members after their class."""
    modules = _modules()
    entries: list[Entry] = []
    for module_name in (PACKAGE, *MODULES):
        for name in _public_names(modules[module_name]):
            obj = getattr(modules[module_name], name)
            if _home(name, obj, modules) != module_name:
                continue
            kind = "class" if inspect.isclass(obj) else "function" if _is_routine(obj) else "data"
            entries.append(Entry(module_name, name, obj, kind))
            if inspect.isclass(obj):
                for member_name, member, member_kind in _members(obj):
                    entries.append(Entry(module_name, f"{name}.{member_name}", member, member_kind))
    return entries


def own_docstring(entry: Entry) -> str:
    """The docstring written for the object itself (not inherited, not generated)."""
    if entry.kind == "data":
        return DATA_DOCS.get(entry.qualname) or _doc_comment(entry)
    doc = entry.obj.__doc__ if entry.kind == "class" else entry.function.__doc__
    if not isinstance(doc, str):
        return ""
    if entry.kind == "class":
        # dataclasses make up "Name(field, ...)" when there is no docstring
        inherited = {getattr(base, "__doc__", None) for base in entry.obj.__mro__[1:]}
        if doc in inherited or doc.startswith(f"{entry.obj.__name__}("):
            return ""
    return inspect.cleandoc(doc)


def _source(module: ModuleType, name: str) -> tuple[ModuleType, str]:
    """Where a constant is assigned: follows ``from yolo2retina.x import NAME as ALIAS``."""
    if name in _assignments(module):
        return module, name
    for stmt in ast.parse(inspect.getsource(module)).body:
        if isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
            for alias in stmt.names:
                if (alias.asname or alias.name) == name and stmt.module.startswith(PACKAGE):
                    return _source(importlib.import_module(stmt.module), alias.name)
    return module, name


def _doc_comment(entry: Entry) -> str:
    """The ``#:`` comment lines above a constant (or above the group of constants it ends)."""
    module, name = _source(importlib.import_module(entry.module), entry.name)
    statements = _assignments(module)
    stmt = statements.get(name)
    if stmt is None:
        return ""
    ends = {s.end_lineno: s.lineno for s in statements.values()}
    lines = inspect.getsource(module).splitlines()
    comment: list[str] = []
    i = stmt.lineno - 2
    while i >= 0:
        line = lines[i]
        if line.startswith("#:"):
            comment.insert(0, line[2:].strip())
            i -= 1
        elif not comment and (i + 1) in ends:
            i = ends[i + 1] - 2  # part of a block of assignments: the block's comment
        else:
            break
    return "\n".join(comment)


def _enum_comments(cls: type) -> dict[str, str]:
    """The trailing ``#:`` comments of the members of an Enum class."""
    comments: dict[str, str] = {}
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s+(\w+)\s*=.*?#:\s*(.*)$", line)
        if m:
            comments[m.group(1)] = m.group(2).strip()
    return comments


# -- anchors and links ----------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


class Anchors:
    """Heading anchors (unique, as GitHub numbers repeats) and name -> anchor lookups."""

    def __init__(self) -> None:
        self._used: dict[str, int] = {}
        self.by_name: dict[str, str] = {}

    def add(self, heading: str, *names: str) -> str:
        """The anchor of a new heading, which the dotted ``names`` will link to."""
        base = _slug(heading)
        count = self._used.get(base, 0)
        self._used[base] = count + 1
        anchor = base if count == 0 else f"{base}-{count}"
        for name in names:
            self.by_name.setdefault(name, anchor)
        return anchor

    def find(self, target: str, module: str, cls: str | None, member: bool = False) -> str | None:
        """The anchor a Sphinx cross-reference in ``module`` (and class ``cls``) points at.

        A ``member`` (``:meth:``, ``:attr:``) is looked up in the class first, anything else
        in the module first.
        """
        candidates = [target, f"{module}.{target}", f"{PACKAGE}.{target}"]
        if cls:
            candidates.insert(0 if member else len(candidates), f"{module}.{cls}.{target}")
        for name in candidates:
            if name in self.by_name:
                return self.by_name[name]
        tails = {a for n, a in self.by_name.items() if n.endswith(f".{target}")}
        return tails.pop() if len(tails) == 1 else None


@dataclass(frozen=True)
class Context:
    """Where a docstring is rendered: for resolving cross-references."""

    anchors: Anchors
    module: str
    cls: str | None = None


# -- docstrings -----------------------------------------------------------------------------


def inline(text: str, ctx: Context) -> str:
    """RST inline markup to Markdown: ``code`` and :role:`target` (a link when documented)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            code = m.group(1)
            return f"`` {code} ``" if "`" in code else f"`{code}`"
        role, tilde, target = m.group(2), m.group(3), m.group(4)
        shown = target.rsplit(".", 1)[-1] if tilde else target
        anchor = ctx.anchors.find(target, ctx.module, ctx.cls, role in ("attr", "meth"))
        return f"[`{shown}`](#{anchor})" if anchor else f"`{shown}`"

    return INLINE.sub(sub, text)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block(lines: list[str], start: int, deeper_than: int) -> tuple[list[str], int]:
    """The lines from ``start`` that are blank or indented more than ``deeper_than``."""
    while start < len(lines) and not lines[start].strip():
        start += 1
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > deeper_than):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end], end


def _fence(language: str, lines: list[str]) -> list[str]:
    return ["", f"```{language}", *textwrap.dedent("\n".join(lines)).splitlines(), "```", ""]


def render_prose(lines: list[str], ctx: Context) -> list[str]:
    """Paragraphs and lists as they are; doctests and ``::`` literal blocks fenced."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(">>>"):
            end = i
            while end < len(lines) and lines[end].strip():
                end += 1
            out += _fence("python-console", lines[i:end])
            i = end
        elif line.rstrip().endswith("::") and not line.rstrip().endswith(":::"):
            text = line.rstrip()[:-2].rstrip()
            out.append(inline(text + ":" if text and not text.endswith(":") else text, ctx))
            block, i = _block(lines, i + 1, _indent(line))
            out += _fence("text", block)
        else:
            out.append(inline(line, ctx))
            i += 1
    return out


def render_entries(lines: list[str], ctx: Context, link_names: bool) -> list[str]:
    """``name: description`` entries (Args, Attributes, Raises) as a bullet list."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(\*{0,2}[\w.]+)(\s*\([^)]*\))?:(?:\s+(.*))?$", line)
        rest, i = _block(lines, i + 1, 0)
        if not m:
            out += [inline(line, ctx)] + ["  " + s if s else s for s in render_prose(rest, ctx)]
            continue
        name = m.group(1)
        anchor = ctx.anchors.find(name, ctx.module, ctx.cls) if link_names else None
        label = f"[`{name}`](#{anchor})" if anchor else f"`{name}`"
        if m.group(2):
            label += " " + m.group(2).strip()
        body = render_prose(textwrap.dedent("\n".join(rest)).splitlines(), ctx)
        out.append(f"- {label}: {inline(m.group(3) or '', ctx)}".rstrip())
        out += ["  " + s if s.strip() else "" for s in body]
    return out


def render_docstring(doc: str, ctx: Context) -> list[str]:
    """A cleaned docstring as Markdown: Google-style sections become bold labels."""
    lines = doc.splitlines()
    out: list[str] = []
    prose: list[str] = []
    i = 0
    while i < len(lines):
        m = re.fullmatch(r"([A-Z][A-Za-z ]*):", lines[i])
        title = m.group(1) if m else ""
        if title not in ENTRY_SECTIONS | TEXT_SECTIONS:
            prose.append(lines[i])
            i += 1
            continue
        out += render_prose(prose, ctx)
        prose = []
        body, i = _block(lines, i + 1, 0)
        body = textwrap.dedent("\n".join(body)).splitlines()
        if title in ENTRY_SECTIONS:
            out += ["", f"**{title}:**", "", *render_entries(body, ctx, title == "Raises"), ""]
        elif body and all(s.strip() and s[0] not in " *-0123456789>" for s in body):
            out += ["", f"**{title}:** {inline(body[0], ctx)}", *render_prose(body[1:], ctx), ""]
        else:
            out += ["", f"**{title}:**", "", *render_prose(body, ctx), ""]
    out += render_prose(prose, ctx)
    return _squeeze(out)


def _squeeze(lines: list[str]) -> list[str]:
    """Drop leading, trailing and repeated blank lines (outside fenced blocks)."""
    out: list[str] = []
    fenced = False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and not line.strip() and (not out or not out[-1].strip()):
            continue
        out.append(line.rstrip() if not fenced else line)
    while out and not out[-1].strip():
        out.pop()
    return out


def summary(doc: str, ctx: Context) -> str:
    """The first paragraph of a docstring, on one line (for tables)."""
    first = doc.split("\n\n", 1)[0]
    return inline(" ".join(first.split()), ctx).replace("|", "\\|")


# -- signatures and values ------------------------------------------------------------------


def _annotation(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation
    return inspect.formatannotation(annotation)


def _attrs_field(cls: Any, name: str) -> Any:
    """The attrs field behind ``__init__`` parameter ``name``."""
    return next(f for f in cls.__attrs_attrs__ if getattr(f, "alias", f.name) == name)


def _default(value: Any, owner: Any, name: str) -> str:
    if repr(value) == "NOTHING" and hasattr(owner, "__attrs_attrs__"):
        factory = getattr(_attrs_field(owner, name).default, "factory", None)
        if isinstance(factory, type):
            return f"{factory.__name__}()"
        return "<factory>"
    if isinstance(value, (set, frozenset)):
        items = ", ".join(sorted(repr(v) for v in value))
        return f"{type(value).__name__}({{{items}}})"
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    return ADDRESS.sub("", repr(value))


def format_signature(name: str, sig: inspect.Signature, owner: Any = None) -> str:
    """``name(params) -> return``, one parameter per line when it does not fit on one."""
    params: list[str] = []
    previous: Any = None
    for p in sig.parameters.values():
        if previous is p.POSITIONAL_ONLY and p.kind is not p.POSITIONAL_ONLY:
            params.append("/")
        if p.kind is p.KEYWORD_ONLY and previous not in (p.KEYWORD_ONLY, p.VAR_POSITIONAL):
            params.append("*")
        stars = "*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else ""
        text = stars + p.name
        annotation = p.annotation
        if annotation is p.empty and hasattr(owner, "__attrs_attrs__"):
            annotation = _attrs_field(owner, p.name).type or p.empty  # converter, no annotation
        if annotation is not p.empty:
            text += f": {_annotation(annotation)}"
        if p.default is not p.empty:
            eq = " = " if annotation is not p.empty else "="
            text += eq + _default(p.default, owner, p.name)
        params.append(text)
        previous = p.kind
    if previous is inspect.Parameter.POSITIONAL_ONLY:
        params.append("/")
    ret = ""
    if sig.return_annotation is not sig.empty:
        ret = f" -> {_annotation(sig.return_annotation)}"
    one_line = f"{name}({', '.join(params)}){ret}"
    if len(one_line) <= SIGNATURE_WIDTH:
        return one_line
    return "\n".join([f"{name}(", *(f"    {p}," for p in params), f"){ret}"])


def _class_signature(cls: type) -> str:
    """``class Name(params)``; only ``class Name`` when ``__init__`` is not Python code."""
    head = f"class {cls.__name__}"
    if issubclass(cls, enum.Enum) or getattr(cls, "_is_protocol", False):
        return head
    for klass in cls.__mro__:
        init = vars(klass).get("__init__") or vars(klass).get("__new__")
        if init is not None:
            if not inspect.isfunction(getattr(init, "__func__", init)):
                return head
            break
    sig = inspect.signature(cls).replace(return_annotation=inspect.Signature.empty)
    return format_signature(head, sig, owner=cls)


def _value(entry: Entry) -> str:
    """``NAME: annotation = value`` for a constant, with nothing version-specific in it."""
    module, name = _source(importlib.import_module(entry.module), entry.name)
    annotation = getattr(module, "__annotations__", {}).get(name)
    head = entry.name + (f": {_annotation(annotation)}" if annotation is not None else "")
    value = entry.obj
    if entry.qualname in HIDE_VALUE:
        return head if annotation is not None else f"{head}: {type(value).__name__}"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{head}  # shape {tuple(value.shape)}, {value.dtype}"
    stmt = _assignments(module).get(name)
    simple = (str, bytes, int, float, bool, tuple, list, dict, set, frozenset, type(None))
    if not isinstance(value, simple) and stmt is not None and stmt.value is not None:
        shown = ast.get_source_segment(inspect.getsource(module), stmt.value) or ""
        return f"{head} = {' '.join(shown.split())}"
    return f"{head} = {_default(value, None, entry.name)}"


def _bases(cls: type, ctx: Context) -> str:
    names = []
    for base in cls.__bases__:
        if base is object or (base.__module__ == "typing" and base.__name__ == "Generic"):
            continue
        if base.__module__ == "builtins":
            names.append(f"`{base.__name__}`")
            continue
        full = f"{base.__module__}.{base.__qualname__}"
        anchor = ctx.anchors.find(full, ctx.module, None)
        names.append(f"[`{base.__name__}`](#{anchor})" if anchor else f"`{full}`")
    return ", ".join(names)


# -- the page -------------------------------------------------------------------------------


def _heading(entry: Entry) -> str:
    return f"`{entry.qualname}`" if "." not in entry.name else f"`{entry.name}`"


def render() -> str:
    """The whole Markdown page."""
    modules = _modules()
    entries = public_api()
    anchors = Anchors()
    module_anchor = {m: anchors.add(f"`{m}`", m) for m in (PACKAGE, *MODULES)}
    anchor_of: dict[str, str] = {}
    for entry in entries:
        anchor_of[entry.qualname] = anchors.add(_heading(entry), entry.qualname)
    for module_name in (PACKAGE, *MODULES):  # re-exports link to the home section
        for name in _public_names(modules[module_name]):
            obj = getattr(modules[module_name], name)
            home = f"{_home(name, obj, modules)}.{name}"
            anchors.by_name.setdefault(f"{module_name}.{name}", anchor_of[home])
            if inspect.isclass(obj):
                for member, _, _ in _members(obj):
                    anchors.by_name.setdefault(
                        f"{module_name}.{name}.{member}", anchor_of[f"{home}.{member}"]
                    )

    lines = [
        "# API reference",
        "",
        "<!-- Generated by docs/gen_api_reference.py from the docstrings. Do not edit. -->",
        "",
        f"The public Python API: every name in `{PACKAGE}.__all__` and in the `__all__` of the",
        "modules below. A name is documented in the module that defines it; the modules that",
        "re-export it link there. Anything else (names starting with `_`, modules not listed",
        "here) may change without notice.",
        "",
        "## Contents",
        "",
    ]
    for m in (PACKAGE, *MODULES):
        doc = inspect.cleandoc(modules[m].__doc__ or "")
        lines.append(f"- [`{m}`](#{module_anchor[m]}): {summary(doc, Context(anchors, m))}")
    lines.append("")

    for m in (PACKAGE, *MODULES):
        ctx = Context(anchors, m)
        lines += [f"## `{m}`", ""]
        lines += render_docstring(inspect.cleandoc(modules[m].__doc__ or ""), ctx)
        lines += ["", "| Name | Summary |", "| --- | --- |"]
        for name in _public_names(modules[m]):
            obj = getattr(modules[m], name)
            home = _home(name, obj, modules)
            link = f"[`{name}`](#{anchor_of[f'{home}.{name}']})"
            entry = next(e for e in entries if e.qualname == f"{home}.{name}")
            text = summary(own_docstring(entry), Context(anchors, home))
            if home != m:
                text += f" (from [`{home}`](#{module_anchor[home]}))"
            lines.append(f"| {link} | {text} |")
        lines.append("")
        for entry in (e for e in entries if e.module == m):
            cls = None if entry.kind in ("function", "data") else entry.name.split(".")[0]
            lines += _render_entry(entry, Context(anchors, m, cls))
    return "\n".join(_squeeze(lines)) + "\n"


def _render_entry(entry: Entry, ctx: Context) -> list[str]:
    level = "####" if "." in entry.name else "###"
    lines = [f"{level} {_heading(entry)}", ""]
    doc = own_docstring(entry)
    if entry.kind == "data":
        lines += ["```text", _value(entry), "```", ""]
    elif entry.kind == "class":
        lines += ["```text", _class_signature(entry.obj), "```", ""]
        bases = _bases(entry.obj, ctx)
        if bases:
            lines += [f"Bases: {bases}", ""]
    elif entry.kind == "property":
        fget = entry.function
        ret = inspect.signature(fget).return_annotation
        shown = "" if ret is inspect.Signature.empty else f": {_annotation(ret)}"
        lines += ["```text", f"property {fget.__name__}{shown}", "```", ""]
    else:
        func = entry.function
        sig = inspect.signature(func)
        if entry.kind == "method":
            sig = sig.replace(parameters=list(sig.parameters.values())[1:])
        elif entry.kind == "classmethod":
            sig = inspect.signature(getattr(_owner(entry), func.__name__))  # bound: no cls
        prefix = f"{entry.kind} " if entry.kind in ("classmethod", "staticmethod") else ""
        lines += ["```text", prefix + format_signature(func.__name__, sig), "```", ""]
    lines += render_docstring(doc, ctx)
    lines.append("")
    if entry.kind == "class" and issubclass(entry.obj, enum.Enum):
        comments = _enum_comments(entry.obj)
        lines += ["| Member | Value | Meaning |", "| --- | --- | --- |"]
        for member in entry.obj:
            meaning = inline(comments.get(member.name, ""), ctx).replace("|", "\\|")
            lines.append(f"| `{member.name}` | `{member.value!r}` | {meaning} |")
        lines.append("")
    if entry.kind == "class":
        attributes = [
            f"`{name} = {_default(value, None, name)}`"
            for name, value in vars(entry.obj).items()
            if not name.startswith("_")
            and isinstance(value, (str, int, float, bool, tuple))
            and not isinstance(value, enum.Enum)
        ]
        if attributes:
            lines += ["Class attributes: " + ", ".join(attributes) + ".", ""]
    return lines


def _owner(entry: Entry) -> Any:
    return getattr(importlib.import_module(entry.module), entry.name.split(".")[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is stale")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(OUT.resolve().parents[1]))  # this checkout, even if not installed
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is stale: run python docs/gen_api_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
