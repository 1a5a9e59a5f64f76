"""The report's templates: Jinja2, with the report's own filters and functions.

A template is Markdown with Jinja2 expressions:

- ``{{ capacity.ours_50 | int }}`` - a fact (see :func:`chat.reporting.facts.facts`),
  formatted for the language (the filters are :data:`chat.reporting.numbers.FORMATS`);
  a fact without a filter is written as it is;
- ``{{ table("capacity") }}`` - a Markdown table made from the results (see
  :data:`chat.reporting.tables.TABLES`);
- ``{{ listing("chat.tcp.server:ChatServer.broadcast") }}`` - that function's
  source as it is now, found by its qualified name, so moving a file needs no
  template edit;
- ``{{ verbatim("session.txt") }}`` - a file of the report folder, as it is.

English and Russian use the same facts, tables and listings, so the two
reports can't disagree with each other or with the measurements.  A fact that
does not exist is an error (:class:`KeyError`), never a gap in the text.
"""

from __future__ import annotations

import importlib
import inspect
from functools import reduce
from pathlib import Path

import jinja2

from chat.reporting.numbers import FORMATS, format_fact
from chat.reporting.tables import TABLES

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
LINES_WORD = {"en": "lines", "ru": "строки"}


class UnknownFact(jinja2.StrictUndefined):
    """A name the facts don't have: it keeps the whole dotted path, and using it is a :class:`KeyError`."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return UnknownFact(name=f"{self._undefined_name}.{name}")


def _known(value):
    if isinstance(value, jinja2.Undefined):
        raise KeyError(f"the report refers to an unknown fact: {value._undefined_name}")
    return value


def render(template: str, context: dict, language: str, report_dir: Path) -> str:
    """Render one template: ``context`` holds ``results`` (by scenario) and ``facts`` (nested dicts)."""
    environment = jinja2.Environment(undefined=UnknownFact, keep_trailing_newline=True, autoescape=False,
                                     finalize=lambda value: format_fact(_known(value), "text", language))
    for kind in FORMATS:
        environment.filters[kind] = lambda value, kind=kind: format_fact(_known(value), kind, language)
    environment.globals.update(
        table=lambda name: TABLES[name](context["results"], language),
        listing=lambda qualified_name: listing(qualified_name, language),
        verbatim=lambda name: (report_dir / name).read_text(encoding="utf-8").rstrip("\n"),
    )
    return environment.from_string(template).render(context["facts"])


def listing(qualified_name: str, language: str = "en") -> str:
    """A fenced block with the source of ``module:Class.method`` (or ``module:function``), with its place."""
    module_name, _, attribute_path = qualified_name.partition(":")
    target = reduce(getattr, attribute_path.split("."), importlib.import_module(module_name))
    target = inspect.unwrap(target)
    lines, first = inspect.getsourcelines(target)
    last = first + len(lines) - 1
    path = Path(inspect.getsourcefile(target)).resolve().relative_to(REPOSITORY_ROOT).as_posix()
    text = [line.rstrip("\n") for line in lines]
    indent = min(len(line) - len(line.lstrip()) for line in text if line.strip())
    body = "\n".join(line[indent:] for line in text)
    return f"```python\n# {path}, {LINES_WORD[language]} {first}\u2013{last}\n{body}\n```"
