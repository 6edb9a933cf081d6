"""MkDocs hooks: the schedule gallery page and its pictures are drawn from the code at build time,
so the gallery always shows what the installed cyclr computes (nothing generated is committed)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import yaml
from mkdocs.structure.files import File, Files

import cyclr
from cyclr.plot import figure_png, gallery_entries, plot_schedules

GALLERY = "gallery.md"

INTRO = """# Schedule gallery

Every schedule family cyclr has, drawn by the installed cyclr when this site was built. Each
entry gives the Python that builds it and the same schedule as data (`cyclr.load_config` reads
the YAML). Dotted orange lines mark cycle and phase starts; a dashed grey line is the momentum
that `mirror(0.85, 0.95)` cycles opposite to the LR. The same code runs in PyTorch
(`cyclr.torch.Scheduler`), Keras 3 (`cyclr.keras.Schedule`) and optax (`cyclr.jax.schedule`).
"""


def code(schedule: cyclr.Schedule) -> str:
    """The shortest call that builds ``schedule``: the registered function, defaults left out."""
    args = []
    for f in dataclasses.fields(schedule):  # type: ignore[arg-type]
        if not f.init:
            continue
        value = getattr(schedule, f.name)
        if f.default is not dataclasses.MISSING and value == f.default:
            continue
        args.append(f"{f.name}={_literal(value)}")
    return f"cyclr.{schedule.name}({', '.join(args)})"


def _literal(value: Any) -> str:
    if isinstance(value, cyclr.Schedule):
        return code(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def gallery_markdown() -> tuple[str, dict[str, bytes]]:
    """The page and its pictures (``gallery/<slug>.png``)."""
    parts, pictures = [INTRO], {}
    for entry in gallery_entries():
        name = slug(entry.title)
        fig = plot_schedules([entry.schedule], entry.steps, momentum=entry.momentum, log=entry.log, title=entry.title)
        pictures[f"gallery/{name}.png"] = figure_png(fig)
        config = yaml.safe_dump(entry.schedule.to_config(), sort_keys=False, default_flow_style=False).strip()
        mirror = f"\nmomentum = schedule.mirror{entry.momentum}" if entry.momentum else ""
        parts.append(
            f"## {entry.title}\n\n![{entry.title}](gallery/{name}.png)\n\n"
            f"```python\nimport cyclr\n\nschedule = {code(entry.schedule)}{mirror}\n```\n\n"
            f"```yaml\n{config}\n```\n"
        )
    return "\n".join(parts), pictures


def range_test_png() -> bytes:
    """The range test guide's picture: three sweeps on the guide's own problem (digits, an MLP)."""
    import torch
    from sklearn.datasets import load_digits

    import cyclr.torch

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    result = cyclr.torch.lr_range_test(
        model, optimizer, torch.nn.functional.cross_entropy, loader, repeats=3, progress=False
    )
    return figure_png(result.plot(title="cyclr.torch.lr_range_test(..., repeats=3) on digits"))


#: Sphinx roles in the docstrings (``:class:`~cyclr.finder.RangeTestResult```), as mkdocstrings
#: leaves them in the HTML: ``:class:<code>~cyclr.finder.RangeTestResult</code>``.
ROLE = re.compile(r":(?:class|func|meth|attr|data|mod|exc|obj|math):<code>(~?)([^<]+)</code>")


def _role(match: re.Match[str]) -> str:
    target = match.group(2)
    shown = target.lstrip(".").rsplit(".", 1)[-1] if match.group(1) else target
    return f"<code>{shown}</code>"


def on_page_content(html: str, **kwargs: Any) -> str:
    """The API pages show a docstring's ``:class:`X``` as the code ``X`` (the ``~`` form as its last
    component), as Sphinx would, instead of the raw role."""
    return ROLE.sub(_role, html)


def on_files(files: Files, config: Any) -> Files:
    page, pictures = gallery_markdown()
    files.append(File.generated(config, GALLERY, content=page))
    pictures["guides/range-test.png"] = range_test_png()
    for path, data in pictures.items():
        files.append(File.generated(config, path, content=data))
    return files
