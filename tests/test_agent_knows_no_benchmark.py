"""The benchmark measures the agent only while the agent knows nothing of it: no goal phrasing, slogan, badge
text or family word list of the benchmark may appear anywhere in `graph/` (code, prompts, docstrings)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pixplan.training.families import FAMILIES

GRAPH = Path(__file__).parents[1] / "graph"


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def _family_words(family) -> set[str]:
    """The words that name a family: its slogan words and the alternatives of its keyword pattern."""
    keywords = {word for word in re.split(r"[|()]", family.keywords) if word.isalpha()}
    return {word.lower() for word in family.words} | keywords


def benchmark_content(source: str) -> list[str]:
    """What of the benchmark one Python module contains, in words (empty when nothing)."""
    text = _normal(source)
    literals = [
        _normal(node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    found = []
    for family in FAMILIES.values():
        found += [f"{family.name} goal {goal!r}" for goal in family.goals if _normal(goal) in text]
        phrases = [*family.slogans, *([family.element.text] if family.element and family.element.text else [])]
        for phrase in phrases:
            quoted = any(f"{q}{_normal(phrase)}{q}" in text for q in "'\"")
            if quoted or _normal(phrase) in literals:
                found.append(f"{family.name} slogan or badge {phrase!r}")
        words = _family_words(family)
        as_literals = sorted(words & set(literals))
        if len(as_literals) >= 2:
            found.append(f"{family.name} words as strings {as_literals}")
        for literal in literals:
            inside = sorted(word for word in words if re.search(rf"\b{re.escape(word)}", literal))
            if len(inside) >= 3:
                found.append(f"{family.name} words in one string {inside}")
    return found


def test_graph_holds_no_benchmark_content():
    modules = sorted(GRAPH.rglob("*.py"))
    assert len(modules) >= 10
    found = {str(path.relative_to(GRAPH)): benchmark_content(path.read_text()) for path in modules}
    assert not {path: items for path, items in found.items() if items}


def test_the_check_finds_a_keyword_recipe():
    """What the planner prompt once held: keyword-picked recipes with benchmark goals and slogans."""
    recipe = '''
DEMONSTRATIONS = [{"keywords": {"eco", "green", "planet"}, "goal": "Adapt this ad for a winter campaign",
                   "slogan": "Naturally green"}]
HINT = "winter words: snow, frost, cozy"
'''
    found = benchmark_content(recipe)
    assert any(item.startswith("eco words as strings") for item in found)
    assert any("goal 'Adapt this ad for a winter campaign'" in item for item in found)
    assert any("slogan or badge 'Naturally green'" in item for item in found)
    assert any(item.startswith("winter words in one string") for item in found)
    assert benchmark_content('GOAL = "give this coffee ad a cosy autumn feel"') == []
