"""The lab report: the committed text is exactly its templates rendered with the committed results."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from chat import report, reporttext

ROOT = report.REPORT_DIR.parent
LINK = re.compile(r"\]\(([^)\s]+)\)")
PLACEHOLDER_NAMES = re.compile(r"\{\{\s*(.+?)\s*\}\}")


def committed_results() -> dict:
    return report.load_results(report.REPORT_DIR / "results")


@pytest.mark.parametrize("language", list(report.LANGUAGES))
def test_committed_report_is_its_template_rendered_with_the_committed_results(language):
    template, target = report.LANGUAGES[language]
    rendered = report.render(template, committed_results(), language, report.REPORT_DIR)
    committed = (report.REPORT_DIR / target).read_text(encoding="utf-8")
    assert committed == rendered, f"report/{target} is stale: run `python -m chat report --render-only`"


def test_readme_performance_section_is_generated_from_the_same_results():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(report.PERFORMANCE_START, 1)[1].split(report.PERFORMANCE_END, 1)[0]
    assert section.strip("\n") == report.performance_section(committed_results())


@pytest.mark.parametrize("document", ["report/README.md", "report/README.ru.md", "README.md"])
def test_every_file_and_figure_a_document_links_to_exists(document):
    path = ROOT / document
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        assert (path.parent / target.split("#", 1)[0]).exists(), f"{document} links to missing {target}"


def test_both_languages_quote_the_same_facts_tables_and_listings():
    english, russian = ((report.REPORT_DIR / template).read_text(encoding="utf-8")
                        for template, _ in report.LANGUAGES.values())
    assert sorted(PLACEHOLDER_NAMES.findall(english)) == sorted(PLACEHOLDER_NAMES.findall(russian))


def test_every_figure_is_in_the_report():
    text = (report.REPORT_DIR / "README.md").read_text(encoding="utf-8")
    for figure in (report.REPORT_DIR / "figures").glob("*.svg"):
        assert f"figures/{figure.name}" in text


@pytest.mark.timeout(600)  # the first test to ask for `stored` runs every quick scenario
def test_a_report_renders_from_fresh_quick_results(stored, tmp_path):
    shutil.copytree(stored, tmp_path / "results")
    (tmp_path / "session.txt").write_text("(no session in this test)\n", encoding="utf-8")
    written = report.generate(tmp_path, "quick", measure=False)
    assert {path.name for path in written} >= {"README.md", "README.ru.md", "throughput-vs-clients.svg"}
    for name in ("README.md", "README.ru.md"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert "{{" not in text and "}}" not in text
    assert "нет данных" in (tmp_path / "README.ru.md").read_text(encoding="utf-8")  # quick runs miss some points


def test_an_unknown_fact_is_an_error_not_a_gap():
    with pytest.raises(KeyError, match="no.such"):
        reporttext.render("{{ no.such | int }}", {"results": {}, "facts": {}}, "en", Path("."))


@pytest.mark.parametrize("value, kind, english, russian", [
    (1234567.8, "int", "1,234,568", "1\u00a0234\u00a0568"),
    (0.9891, "pct", "98.9%", "98,9\u00a0%"),
    (1.2345, "ms", "1.23\u00a0ms", "1,23\u00a0мс"),
    (612.5, "ms", "612\u00a0ms", "612\u00a0мс"),
    (1 << 20, "mib", "1.0\u00a0MiB", "1,0\u00a0МиБ"),
    (None, "int", "n/a", "нет данных"),
])
def test_numbers_are_written_the_way_each_language_writes_them(value, kind, english, russian):
    assert reporttext.format_fact(value, kind, "en") == english
    assert reporttext.format_fact(value, kind, "ru") == russian


def test_listings_are_the_source_as_it_is():
    block = reporttext.listing("chat/server.py", "ChatServer.broadcast")
    source = (ROOT / "chat/server.py").read_text(encoding="utf-8")
    body = block.split("\n", 2)[2].rsplit("\n```", 1)[0]
    assert body.splitlines()[0] == "def broadcast(self, payload: bytes, exclude: Session | None = None) -> int:"
    assert all(line.strip() in source for line in body.splitlines())


def test_the_session_transcript_is_a_real_session():
    from chat.transcript import USERS, capture_session

    transcript = capture_session()
    for name in USERS:
        assert f"$ python -m chat client {name} --port" in transcript
    assert "<Дмитрий> Добрый вечер. Кириллица доходит целой?" in transcript
    assert "*** Дмитрий left (quit: пора спать)" in transcript
    assert "server stopped" in transcript
