#!/usr/bin/env bash
# A real install: build the wheel, install it (no deps, no network) into a fresh virtual environment that sees the
# dependencies already installed for PYTHON, and run both command lines from outside the source tree, so the
# code and the Hydra configs (pkg://configs) can only come from the wheel.
# Usage: .ci/install_check.sh [PYTHON]   (default: python3; `make install-check` passes the project's venv)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${1:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/icl-install-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Built from a copy of the files git would commit, so stale build/ leftovers can never slip into the wheel.
mkdir "$WORK/src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - | tar -xf - -C "$WORK/src"
else  # an unpacked source archive: everything but environments and build output
    tar -cf - --exclude=./.venv --exclude=./build --exclude=./dist --exclude=./outputs --exclude='*.egg-info' . \
        | tar -xf - -C "$WORK/src"
fi
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation --wheel-dir "$WORK/dist" "$WORK/src"
"$PYTHON" -m venv "$WORK/venv"
# The new venv sees the dependencies through a .pth line; .pth files inside that directory (an editable
# install of this project among them) are not processed, so `import envs` can only find the wheel's copy.
DEPS="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
SITE="$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$DEPS" > "$SITE/_icl_arena_dependencies.pth"
"$WORK/venv/bin/python" -m pip install -q --no-deps --no-index "$WORK"/dist/icl_arena-*.whl

mkdir "$WORK/run" && cd "$WORK/run"
export HF_HUB_OFFLINE=1
"$WORK/venv/bin/python" - "$SITE" <<'PY'
import sys

import configs
import envs
import leaderboard
import trainers

site = sys.argv[1]
for module in (envs, configs, leaderboard, trainers):
    assert module.__file__.startswith(site), f"{module.__name__} imported from {module.__file__}, not the wheel"
print("install check: envs, configs, leaderboard, trainers import from the wheel")
PY
"$WORK/venv/bin/python" -m leaderboard.evaluate agent=thompson suite=bandits trials=2 output_dir=out progress=false \
    | tail -n 3
test -s out/results.jsonl
# Into a file first: `--help | head` would close the pipe before a long help text is written (BrokenPipeError).
"$WORK/venv/bin/python" -m trainers.orbit --help > orbit_help.txt
head -n 3 orbit_help.txt
echo "install check: the wheel runs leaderboard.evaluate and trainers.orbit"
