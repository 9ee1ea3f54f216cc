"""Issue 29: every public function has a numpydoc docstring (Parameters, Returns, Examples)
that documents each of its parameters, and the compiled module's stubs match it."""

from __future__ import annotations

import ast
import inspect
import pydoc
import re
from pathlib import Path

import pytest

import celltext
from celltext import _celltext


def public_callables():
    out = {}
    for mod in (celltext.tl, celltext.genes, celltext.metrics, celltext.pl):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isfunction(obj):
                out[f"{mod.__name__}.{name}"] = obj
    out["celltext.Encoder"] = celltext.Encoder
    for cls in (celltext.Encoder, celltext.GeneStore):
        for name, obj in vars(cls).items():
            if name.startswith("_"):
                continue
            fn = obj.__func__ if isinstance(obj, (classmethod, staticmethod)) else obj
            if inspect.isfunction(fn):
                out[f"celltext.{cls.__name__}.{name}"] = fn
    return out


def sections(doc: str):
    """numpydoc sections: {title: lines}."""
    lines = inspect.cleandoc(doc).splitlines()
    out, cur = {}, None
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[i + 1].strip()) and line.strip():
            cur = line.strip()
            out[cur] = []
        elif cur and not re.fullmatch(r"-{3,}", line.strip()):
            out[cur].append(line)
    return out


def documented_params(lines):
    names = set()
    for line in lines:
        if line and not line.startswith(" "):
            for part in line.split(" : ")[0].split(","):
                names.add(part.strip())
    return names


@pytest.mark.parametrize("qualname", sorted(public_callables()))
def test_every_parameter_is_documented(qualname):
    fn = public_callables()[qualname]
    doc = fn.__doc__ or ""
    s = sections(doc)
    for title in ("Parameters", "Returns", "Examples"):
        assert title in s, f"{qualname}: no {title} section"
    params = [p for p in inspect.signature(fn).parameters if p not in ("self", "cls")]
    missing = [p for p in params if p not in documented_params(s["Parameters"])]
    assert not missing, f"{qualname}: parameters not documented: {missing}"
    extra = documented_params(s["Parameters"]) - set(params)
    assert not extra, f"{qualname}: documents parameters it does not take: {extra}"


def test_help_of_embed_sentences_documents_every_parameter():
    text = pydoc.render_doc(celltext.tl.embed_sentences, renderer=pydoc.plaintext)
    for p in inspect.signature(celltext.tl.embed_sentences).parameters:
        assert re.search(rf"^\s+{p} :", text, re.M), p


def test_stubs_match_the_compiled_module():
    stub = ast.parse(Path(_celltext.__file__).with_name("_celltext.pyi").read_text()
                     if Path(_celltext.__file__).with_name("_celltext.pyi").exists()
                     else (Path(celltext.__file__).parent / "_celltext.pyi").read_text())
    stubbed = {}
    for node in stub.body:
        if isinstance(node, ast.FunctionDef):
            stubbed[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not any(
                    isinstance(d, ast.Name) and d.id == "property" for d in item.decorator_list
                ):
                    stubbed[f"{node.name}.{item.name}"] = item
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            stubbed[node.target.id] = node
    runtime = {n for n in dir(_celltext) if not n.startswith("_")}
    assert runtime == {k.split(".")[0] for k in stubbed}
    for key, node in stubbed.items():
        if not isinstance(node, ast.FunctionDef) or key.endswith(".__len__"):
            continue
        owner, _, name = key.rpartition(".")
        obj = getattr(getattr(_celltext, owner), name) if owner else getattr(_celltext, name)
        if name == "__init__":
            obj = getattr(_celltext, owner)
        want = [a.arg for a in node.args.args if a.arg != "self"]
        got = [p for p in inspect.signature(obj).parameters if p not in ("self", "cls")]
        assert got == want, f"{key}: stub {want} vs compiled {got}"
