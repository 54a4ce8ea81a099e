#!/usr/bin/env bash
# The installed product, as a user gets it: build the wheel, install it into a fresh virtual environment outside the
# repository, and from an empty folder list the packaged configs, validate an SDXL config offline with a local
# prompts file and run the ShapeBench smoke experiment.
#
#   .ci/wheel_check.sh [PYTHON]     PYTHON: an interpreter that has zeta_eval's dependencies (default: .venv/bin/python)
#
# Seconds, not a full install: the wheel goes in with --no-deps and the new environment sees PYTHON's site-packages
# (its packages, not its editable zeta_eval) through a path file, so nothing is downloaded. The wheel is built from a
# copy of the files git tracks (or would track), so the check sees what a release would ship and writes nothing here.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
py="${1:-$repo/.venv/bin/python}"
py="$(cd "$(dirname "$py")" && pwd)/$(basename "$py")"
work="$(mktemp -d "${TMPDIR:-/tmp}/zeta_wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONPATH= PYTHONNOUSERSITE=1

echo "wheel check: building the wheel"
mkdir "$work/src" "$work/dist"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | tar --null -cf - -T - ) | tar -xf - -C "$work/src"
# PYTHON's own setuptools when it has a recent one (offline); else pip builds in isolation (setuptools from its cache)
if "$py" -c 'import sys, setuptools; sys.exit(int(setuptools.__version__.split(".")[0]) < 77)' 2>/dev/null; then
    build=(--no-build-isolation --no-index)
else
    build=()
fi
"$py" -m pip wheel -q --no-deps "${build[@]}" -w "$work/dist" "$work/src" >/dev/null
wheel=("$work"/dist/zeta_eval-*.whl)
"$py" - "$wheel" <<'EOF'
import sys, zipfile
from pathlib import Path
names = zipfile.ZipFile(sys.argv[1]).namelist()
configs = sorted(n for n in names if n.startswith("zeta_eval/configs/") and n.endswith(".yaml"))
missing = [n for n in ("zeta_eval/configs/sdxl_drawbench.yaml", "zeta_eval/configs/shapebench_smoke.yaml",
                       "zeta_eval/assets/shapebench/model_index.json") if n not in names]
if missing:
    sys.exit(f"wheel check: the wheel lacks {', '.join(missing)}")
print(f"wheel check: {Path(sys.argv[1]).name}: {len(names)} files, {len(configs)} configs")
EOF

echo "wheel check: installing it into a fresh environment"
"$py" -m venv --without-pip "$work/venv"
site="$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$site/zeta_eval_dependencies.pth"
"$py" -m pip --python "$work/venv/bin/python" install -q --no-deps --no-index "$wheel"

mkdir "$work/empty"
cd "$work/empty"
vpy="$work/venv/bin/python"
where="$("$vpy" -c 'import zeta_eval; print(zeta_eval.__file__)')"
case "$where" in "$work/venv/"*) ;; *) echo "wheel check: zeta_eval imported from $where, not the wheel"; exit 1;; esac
"$vpy" -m zeta_eval configs > configs.txt
grep -q "sdxl_drawbench.yaml" configs.txt || { cat configs.txt; echo "wheel check: configs does not list sdxl_drawbench.yaml"; exit 1; }
printf '{"prompt": "a red cube left of a blue ball"}\n{"prompt": "two dogs"}\n' > prompts.jsonl
echo "wheel check: validate --config sdxl_drawbench.yaml (offline, local prompts)"
"$vpy" -m zeta_eval validate --config sdxl_drawbench.yaml --data.init_args.source prompts.jsonl > validate.txt
grep -q "2 prompts" validate.txt || { cat validate.txt; echo "wheel check: validate did not plan the 2 local prompts"; exit 1; }
echo "wheel check: predict --config shapebench_smoke.yaml"
OMP_NUM_THREADS=1 "$vpy" -m zeta_eval predict --config shapebench_smoke.yaml > predict.txt 2>&1 \
    || { tail -20 predict.txt; exit 1; }
rows="$("$vpy" -c 'import pyarrow.parquet as pq, glob; print(sum(pq.read_metadata(p).num_rows for p in glob.glob("outputs/shapebench_smoke/parts/*.parquet")))')"
[ "$rows" -gt 0 ] || { echo "wheel check: predict wrote no rows"; exit 1; }
[ -s outputs/shapebench_smoke/index.html ] || { echo "wheel check: predict wrote no report"; exit 1; }
if [ -e "$repo/outputs/shapebench_smoke" ] && [ "$repo/outputs/shapebench_smoke" -nt "$work" ]; then
    echo "wheel check: predict wrote into the repository"; exit 1
fi
echo "wheel check: passed ($rows rows from the installed wheel, run in an empty folder)"
