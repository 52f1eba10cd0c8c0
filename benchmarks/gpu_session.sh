#!/usr/bin/env bash
# One lent GPU, one call (issue 27): the CUDA tests, the side-by-side with the authors' release
# at the paper's setting, and as much of the GPU campaign as the time left allows, every result
# into $OUT with the session's provenance. Written for the `device` tool of this workplace: one
# H100/H200 with PyTorch but no network (nothing is downloaded: the package installs with
# --no-deps, the release travels as an ignored folder), 15 minutes of device time per task,
# start-up included, and at most 8 files back from $OUT, two folders deep (the campaign's
# records come back as one archive).
#
# Here, first (the release is never committed; .release/ is in .git/info/exclude):
#   git --git-dir=<mirror of github:Dongqi-Fan/IRConStyle> archive HEAD | tar -x -C .release
#   DRY=1 bash benchmarks/gpu_session.sh        # the CPU trial: CUDA paths skipped, tiny sizes
# Then on the device (carry .release; SESSION_COMMIT names the commit the copy was made from):
#   SESSION_COMMIT=<git rev-parse HEAD> bash benchmarks/gpu_session.sh
# Afterwards, here: results/gpu_campaign/ from gpu_campaign_records.tgz, and
# irconstyle/results/sidebyside_cuda.json from $OUT, committed with the device's name.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-_build/gpu_session}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RELEASE=${RELEASE:-.release}
DRY=${DRY:-0}
BUDGET_S=${BUDGET_S:-480}     # the whole script; the device call's limit is 600 s
SIDE_S=${SIDE_S:-200}         # the side-by-side's share
T0=$(date +%s)
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
left() { echo $(( BUDGET_S - ($(date +%s) - T0) )); }
log() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/session.log"; }
steps=()   # name=exit status=seconds, for session.json
step() {   # step NAME LIMIT_S COMMAND...: run one part under its time limit, log it, go on
    local name=$1 limit=$2 t=$(date +%s) rc
    shift 2
    if [ "$limit" -le 10 ]; then log "$name: skipped, no time left"; steps+=("$name=skipped=0"); return; fi
    log "$name (limit ${limit} s): $*"
    timeout "$limit" "$@" >>"$OUT/session.log" 2>&1
    rc=$?
    steps+=("$name=$rc=$(( $(date +%s) - t ))")
    log "$name: exit $rc after $(( $(date +%s) - t )) s"
}

if [ "$DRY" = 1 ]; then DEVICE=cpu; else DEVICE=cuda; fi
: >"$OUT/session.log"
{ nvidia-smi 2>&1 || echo "no nvidia-smi"
  python3 -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
} >"$OUT/env.txt" 2>&1
if [ "$DEVICE" = cuda ] && ! python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    log "no CUDA device here: nothing run (DRY=1 is the CPU trial)"; exit 2
fi
[ -f "$RELEASE/archs/ConStyle_arch.py" ] || { log "$RELEASE is not a checkout of the release (see the header)"; exit 2; }

# The package, offline: its dependencies are the image's (torch, scikit-image, safetensors, ...)
python3 -c "import irconstyle" 2>/dev/null ||
    python3 -m pip install -q --no-deps --no-build-isolation -e . >>"$OUT/session.log" 2>&1 ||
    { log "editable install failed: the package is read from the tree"; export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}; }

# 1. The CUDA-only tests (skipped without CUDA: that is what the CPU trial checks)
step gpu_tests 120 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -rs \
    --junitxml "$OUT/gpu_tests.xml"

# 2. Side by side with the release: the six models at the paper's setting (batch 16, 8 for the
#    Restormers, 128x128; inference at 512), fp32 / bf16 on both sides / ours at its best with
#    torch.compile; the JSON is rewritten after every row, so a cut keeps what was measured.
if [ "$DRY" = 1 ]; then
    side=(--models constyle_nafnet --comparisons fp32 --steps 2 --warmup 1 --batch 2 --patch 64
          --sizes 64)
else
    side=(--comparisons fp32 bf16 best --compile --steps 30 --warmup 3 --sizes 512)
fi
lim=$(left); [ "$lim" -gt "$SIDE_S" ] && lim=$SIDE_S
step sidebyside "$lim" python3 benchmarks/sidebyside.py --release "$RELEASE" --device "$DEVICE" \
    "${side[@]}" --out "$OUT/sidebyside_$DEVICE.json"

# 3. Where the training step's time goes (issue 27.3: the profile that shows why, when ours is
#    not 2x the release's at bf16): ConStyle-NAFNet, a few fp32 steps of each side
lim=$(left); [ "$lim" -gt 60 ] && lim=60
prof=(--models constyle_nafnet --modes train --comparisons bf16 --steps 3 --warmup 2 --profile 3)
[ "$DRY" = 1 ] && prof+=(--batch 2 --patch 64)
step profile "$lim" python3 benchmarks/sidebyside.py --release "$RELEASE" --device "$DEVICE" \
    "${prof[@]}" --out "$OUT/profile_$DEVICE.json"

# 4. The GPU campaign, as far as the rest of the budget goes (finished runs write their
#    records; the runner resumes an unfinished run only on the same machine)
lim=$(( $(left) - 15 ))
if [ "$DRY" = 1 ]; then
    step campaign "$lim" python3 -m irconstyle experiment experiments/gpu_campaign.yml --dry-run
else
    step campaign "$lim" env IRCONSTYLE_PROFILE=full python3 -m irconstyle experiment \
        experiments/gpu_campaign.yml --no-progress --out-dir "$PWD/_build/gpu_campaign"
fi
if [ -d _build/gpu_campaign ]; then
    tar -czf "$OUT/gpu_campaign_records.tgz" --exclude=runs -C _build gpu_campaign
fi

# 5. What ran, for how long, on what: session.json (the other files sit beside it)
python3 - "$OUT" "${steps[@]}" <<'PY'
import json, os, platform, sys, time
from pathlib import Path
import torch
out, steps = Path(sys.argv[1]), sys.argv[2:]
record = {"commit": os.environ.get("SESSION_COMMIT"), "dry_run": os.environ.get("DRY", "0") == "1",
          "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
          "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
          "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
          "steps": [dict(zip(("name", "exit", "seconds"), s.split("="))) for s in steps],
          "files": sorted(p.name for p in out.iterdir() if p.is_file())}
(out / "session.json").write_text(json.dumps(record, indent=1) + "\n")
print(json.dumps(record["steps"]))
PY
log "done"
