"""The docs speak of the product only, the README stays short, and the docs generator works.

Process words (issue numbers, sessions, who chose what, paths only the developers have) are
looked for in README.md, BENCHMARKS.md, docs/**/*.md and the docstrings of synth, train and evaluate; a hit
fails naming the file and line.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import docs_pages  # noqa: E402

PROCESS_WORDS = re.compile(
    r"\bissues? \d+|\bissue-\d+|\(issue\b|\bsession\b|\bI chose\b|\bwas lent\b|\.\./shared|DESIGN §",
    re.IGNORECASE,
)
MAX_README_LINES = 300


def _markdown_files() -> list[Path]:
    return [REPO / "README.md", REPO / "BENCHMARKS.md", *sorted((REPO / "docs").rglob("*.md"))]


def _docstrings(path: Path):
    """(line, text) of every docstring of a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    kinds = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
    for node in ast.walk(tree):
        first = node.body[0] if isinstance(node, kinds) and node.body else None
        value = first.value if isinstance(first, ast.Expr) else None
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            yield first.lineno, value.value


def process_words_in_docs() -> list[str]:
    hits = []
    for path in _markdown_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in PROCESS_WORDS.finditer(line):
                hits.append(f"{path.relative_to(REPO)}:{number}: {match.group(0)!r}")
    return hits


def process_words_in_docstrings() -> list[str]:
    hits = []
    for package in ("synth", "train", "evaluate"):
        for path in sorted((REPO / package).rglob("*.py")):
            for first, text in _docstrings(path):
                for offset, line in enumerate(text.splitlines()):
                    for match in PROCESS_WORDS.finditer(line):
                        hits.append(f"{path.relative_to(REPO)}:{first + offset}: {match.group(0)!r}")
    return hits


def test_docs_have_no_process_words():
    hits = process_words_in_docs()
    assert not hits, "process words in the docs:\n" + "\n".join(hits)


def test_docstrings_have_no_process_words():
    hits = process_words_in_docstrings()
    assert not hits, "process words in docstrings:\n" + "\n".join(hits)


def test_the_check_finds_process_words(tmp_path):
    for text in ("as issue 18 asked", "(issue 3)", "in an earlier session", "I chose T = 30",
                 "No GPU was lent", "../shared/real/aitex", "DESIGN §4"):  # fmt: skip
        assert PROCESS_WORDS.search(text), text
    assert not PROCESS_WORDS.search("the tissue 3 mm")


def test_readme_is_short():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines, at most {MAX_README_LINES}"


def test_readme_keeps_the_two_setup_commands():
    readme = (REPO / "README.md").read_text()
    assert "bash scripts/demo.sh" in readme and "bash scripts/test.sh" in readme


def test_readme_lists_every_command():
    readme = (REPO / "README.md").read_text()
    missing = [" ".join(path) for path, _ in docs_pages.commands() if f"`{' '.join(path)}`" not in readme]
    assert not missing, f"README.md's command table lacks {missing}: run benchmarks/docs_pages.py"


def test_experiment_reference_names_every_field():
    from evaluate.experiments import config

    page = (REPO / "docs" / "guide" / "experiments.md").read_text()
    models = [
        config.ExperimentConfig,
        config.RealData,
        config.SyntheticData,
        config.Scenario,
        config.YoloSettings,
        config.MaskRCNNSettings,
        config.SegmentSettings,
    ]
    missing = [f"{m.__name__}.{f}" for m in models for f in m.model_fields if f"`{f}`" not in page]
    assert not missing, f"docs/guide/experiments.md does not describe {missing}"


def test_markdown_links_resolve():
    broken = []
    for path in _markdown_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", line):
                if "://" in target:
                    continue
                if not (path.parent / target).exists():
                    broken.append(f"{path.relative_to(REPO)}:{number}: {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


# ---------------------------------------------------------------- the results-page generator

PAGE = {
    "title": "A tiny experiment",
    "experiment": "experiments/tiny.yaml",
    "summary": "Renders help a little.",
    "blocks": [
        {"text": "Some words before the table.\n"},
        {
            "table": {
                "id": "patchcore",
                "title": "PatchCore, seed 0",
                "command": "evaluate domain-gap experiments/tiny.yaml --out runs/tiny\n",
                "wall": "1 min 2 s",
                "header": ["scenario", "real good imgs", "image AUROC"],
                "rows": [["real_only", "10", "0.700"], ["melded", "10", "0.710"]],
            }
        },
        {"text": "What it says: little.\n"},
    ],
}


def test_a_page_renders_its_tables_commands_and_text(tmp_path):
    path = tmp_path / "tiny.yaml"
    docs_pages.dump_page(PAGE, path)
    page = docs_pages.render_page(docs_pages.load_page(path), "tiny.yaml")
    assert page.startswith("<!-- Generated by benchmarks/docs_pages.py from tiny.yaml")
    assert "# A tiny experiment" in page
    assert "```bash\nevaluate domain-gap experiments/tiny.yaml --out runs/tiny\n```" in page
    assert "Wall time: 1 min 2 s." in page
    assert "| scenario | real good imgs | image AUROC |\n|---|---|---|\n| real_only | 10 | 0.700 |" in page
    assert page.index("Some words") < page.index("| real_only") < page.index("What it says")


def test_a_table_json_replaces_the_table(tmp_path):
    out = tmp_path / "table.json"
    header = ["scenario", "real good imgs", "image AUROC", "AUPRO"]
    rows = [["real_only", 10, 0.73212, float("nan")], ["melded", 10, 0.7, 0.6]]
    out.write_text(json.dumps({"header": header, "rows": rows, "seconds": 3725.4}))
    data = docs_pages.replace_table(json.loads(json.dumps(PAGE)), "patchcore", out)
    page = docs_pages.render_page(data, "tiny.yaml")
    assert "| scenario | real good imgs | image AUROC | AUPRO |" in page
    assert "| real_only | 10 | 0.732 | – |" in page
    assert "| melded | 10 | 0.700 | 0.600 |" in page
    assert "0.710" not in page  # the old rows are gone, not kept beside the new ones
    assert page.count("| scenario |") == 1
    assert "Wall time: 1 h 2 min 5 s. Table from `table.json`." in page
    assert "evaluate domain-gap experiments/tiny.yaml" in page  # the command is kept


def test_replacing_an_unknown_table_names_the_tables(tmp_path):
    out = tmp_path / "table.json"
    out.write_text(json.dumps({"header": ["a"], "rows": [[1]], "seconds": 1}))
    with pytest.raises(SystemExit, match="no table 'nope'.*patchcore"):
        docs_pages.replace_table(json.loads(json.dumps(PAGE)), "nope", out)


def test_the_generated_results_pages_are_up_to_date():
    stale = [
        p.relative_to(REPO).as_posix()
        for p, text in docs_pages.results_pages().items()
        if not p.exists() or p.read_text() != text
    ]
    assert not stale, f"stale: {stale}; run .venv/bin/python benchmarks/docs_pages.py"
