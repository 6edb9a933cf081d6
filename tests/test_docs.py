"""The documentation site: it builds with --strict, and every Python example on it runs.

Each page's ``python`` blocks run in order in one namespace (a page may build on its earlier
blocks), in a temporary folder, with README sections pulled in by ``--8<--`` expanded as MkDocs
expands them. The gallery page is generated at build time: its code is checked to build exactly
the schedule drawn, and its YAML to load back to it.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import cyclr

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SNIPPET = re.compile(r'^--8<-- "([^":]+):([^"]+)"$', re.MULTILINE)
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if not p.is_relative_to(DOCS / "api"))


def expand(text: str) -> str:
    """``--8<-- "FILE:section"`` replaced by the section between its start and end markers."""

    def section(match: re.Match[str]) -> str:
        source = (ROOT / match.group(1)).read_text(encoding="utf-8")
        name = match.group(2)
        start = source.index(f"<!-- --8<-- [start:{name}] -->")
        end = source.index(f"<!-- --8<-- [end:{name}] -->")
        return source[source.index("\n", start) + 1 : end]

    return SNIPPET.sub(section, text)


def examples(page: str) -> list[str]:
    return BLOCK.findall(expand((DOCS / page).read_text(encoding="utf-8")))


def test_every_page_is_in_the_nav_and_every_snippet_exists() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in [*PAGES, *(p.relative_to(DOCS).as_posix() for p in (DOCS / "api").glob("*.md"))]:
        assert page in nav, f"{page} is not in mkdocs.yml's nav"
    for page in PAGES:
        expand((DOCS / page).read_text(encoding="utf-8"))  # a missing section raises ValueError
    # the pages that promise examples have them
    for page in ["index.md", "start/pytorch.md", "start/lightning.md", "start/huggingface.md", "start/keras.md"]:
        assert examples(page), page


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("page", [p for p in PAGES if examples(p)])
def test_page_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict[str, Any] = {"__name__": f"docs_{page}"}
    for i, code in enumerate(examples(page)):
        try:
            exec(compile(code, f"{page} [block {i + 1}]", "exec"), namespace)
        except Exception as err:  # name the block that failed
            raise AssertionError(f"{page}, python block {i + 1} failed: {err!r}\n{code}") from err


def _hooks() -> Any:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "tools" / "docs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_gallery_shows_what_its_code_builds() -> None:
    from cyclr.plot import gallery_entries

    page, pictures = _hooks().gallery_markdown()
    entries = gallery_entries()
    codes = BLOCK.findall(page)
    configs = re.findall(r"^```yaml\n(.*?)^```$", page, re.MULTILINE | re.DOTALL)
    assert len(codes) == len(configs) == len(entries) == len(pictures)
    for entry, code, config in zip(entries, codes, configs):
        namespace: dict[str, Any] = {}
        exec(code, namespace)
        assert namespace["schedule"] == entry.schedule, code
        assert cyclr.from_config(yaml.safe_load(config)) == entry.schedule
    assert all(png.startswith(b"\x89PNG") for png in pictures.values())
    # every registered family appears at least once
    shown = {e.schedule.name for e in entries} | {
        s.name for e in entries for s in getattr(e.schedule, "schedules", ()) or ()
    }
    missing = set(cyclr.registered()) - shown - {"mirror"}
    assert not missing, f"families missing from the gallery: {sorted(missing)}"


def test_the_site_builds_strict(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    site = tmp_path / "site"
    assert (site / "gallery" / "index.html").exists()
    assert len(list((site / "gallery").glob("*.png"))) == len(_hooks().gallery_entries())
    torch_api = (site / "api" / "torch" / "index.html").read_text(encoding="utf-8")
    for name in ("OneCycleLR", "auto_scheduler", "scheduler_from_range_test", "lr_range_test"):
        assert name in torch_api
    for page in (site / "api").glob("*/index.html"):  # Sphinx roles shown as code, not raw
        assert not re.search(r":[a-z]+:<code>", page.read_text(encoding="utf-8")), page
    lightning = (site / "start" / "lightning" / "index.html").read_text(encoding="utf-8")
    assert "RangeTest" in lightning


def test_the_api_page_names_every_lower_case_constructor() -> None:
    page = (DOCS / "api" / "schedules.md").read_text(encoding="utf-8")
    for name in cyclr.__all__:
        obj = getattr(cyclr, name)
        if name.islower() and isinstance(obj, type) and issubclass(obj, cyclr.Schedule):
            assert f"| `cyclr.{name}` | [`{obj.__name__}`](#cyclr.schedules.{obj.__name__}) |" in page, name
