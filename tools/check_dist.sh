#!/usr/bin/env bash
# The release check (`make dist`): build the sdist and, from it, the wheel; `twine check --strict`
# both; then import every public module from the wheel alone (its own files, the venv's
# dependencies), so a module left out of the package fails here, not on a user's machine.
set -euo pipefail
PY=${PY:-$PWD/.venv/bin/python}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$PY" -m build --no-isolation --outdir "$out/dist" . >"$out/build.log" 2>&1 || { cat "$out/build.log"; exit 1; }
if grep -q "WARNING" "$out/build.log"; then grep -A3 "WARNING" "$out/build.log"; echo "build warnings: fix them"; exit 1; fi
"$PY" -m twine check --strict "$out"/dist/*
"$PY" -m pip install --disable-pip-version-check -q --no-deps --target "$out/site" "$out"/dist/*.whl
cd "$out"  # away from src/, so only the wheel's copy can be imported
PYTHONPATH="$out/site" "$PY" - "$out/site" <<'PY'
import importlib, sys
import cyclr
assert cyclr.__file__.startswith(sys.argv[1]), cyclr.__file__
for name in ("cyclr.torch", "cyclr.keras", "cyclr.jax", "cyclr.lightning", "cyclr.hf", "cyclr.finder",
             "cyclr.bench", "cyclr.bench.tune", "cyclr.bench.worker", "cyclr.space", "cyclr.plot", "cyclr.cli"):
    importlib.import_module(name)
import importlib.metadata, importlib.resources
assert importlib.resources.files("cyclr").joinpath("py.typed").is_file()
meta = importlib.metadata.metadata("cyclr")
extras = set(meta.get_all("Provides-Extra") or [])
wanted = {"torch", "keras", "jax", "plot", "cli", "bench", "tune", "anchors", "lightning", "hf", "dev", "all"}
assert wanted <= extras, f"extras missing from the wheel: {sorted(wanted - extras)}"
assert meta["License-Expression"] == "Apache-2.0", meta["License-Expression"]
print(f"wheel ok: cyclr {cyclr.__version__}, every public module imports from it")
PY
