#!/usr/bin/env bash
# The issue-23 campaign (five seeds, compute-matched controls, learning-rate pilot, trend with
# training length), run in the background from clean worktrees ($BASE/campaign_<commit>, each
# with its own .venv), each experiment at ONE commit:
#   9e4c8a0: the commit that fixed the pilot, five-seed and derain-trend files before any run
#   8613e22: the blind-denoising trend (it needed extra_tests), fixed before any of its runs
#   738551e: dehazing's template arms (dehaze_template.yml), fixed before any of its runs
#   c14a7fe: dehazing at each arm's chosen learning rate (lr_chosen_dehaze.yml), fixed before its runs
#   7a1fcf7: the guideline arms at their chosen learning rate (lr_chosen_guidelines.yml), fixed before its runs
#   5e21107: the test comparisons at each arm's chosen learning rate (denoising, deraining),
#            fixed from the pilot's choice before any of their runs
# Records go to $OUT/<experiment>/ (outside the worktrees, so they stay clean and every record
# says package_modified: false); `collect` copies the finished ones into results/pending/ of
# the checkout this script lives in, to be committed; an experiment's records move into
# results/<experiment>/ (replacing the older ones) once all its runs are there.
# Resuming is by construction: finished runs are skipped, an interrupted one resumes from its
# last checkpoint (when $OUT survived). experiments/CAMPAIGN.md says what is done and left.
#
# Usage (from anywhere):  bash experiments/campaign.sh run       # both chains, in order
#                         bash experiments/campaign.sh collect   # copy finished records
#                         bash experiments/campaign.sh promote NAME  # a complete experiment
#                             replaces results/NAME/, then its summary, the ledger and the
#                             key-results boxes are regenerated (python: the checkout's env)
#                         bash experiments/campaign.sh drift COMMIT EXPERIMENT TASK ARM SEED
#                             re-train one committed run at COMMIT and measure the drift
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BASE=${CAMPAIGN_BASE:-/work}
OUT=${CAMPAIGN_OUT:-$BASE/campaign_out}
JOBS=${JOBS:-2}
# In the order the issue asks: pilots and five seeds first, 9,600-step runs last.
# name:commit (see above); the chosen-rate runs come right after the five-seed home runs.
ORDER="lr_pilot:9e4c8a0 lr_pilot_guidelines:9e4c8a0 cpu_campaign:9e4c8a0 dehaze:9e4c8a0 dehaze_template:738551e
lr_chosen_denoise25:5e21107 lr_chosen_derain:5e21107 lr_chosen_dehaze:c14a7fe
guidelines:9e4c8a0 lr_chosen_guidelines:7a1fcf7 ablations:9e4c8a0 trend_blind_600:8613e22 trend_derain_2400:9e4c8a0
trend_blind_2400:8613e22 trend_derain_9600:9e4c8a0 trend_blind_9600:8613e22"

worktree() {  # worktree DIR COMMIT: a detached, clean checkout with its own venv
    local dir=$1 commit=$2
    if [ ! -d "$dir" ]; then
        git -C "$HERE" worktree add --detach "$dir" "$commit" >/dev/null
    fi
    [ "$(git -C "$dir" rev-parse --short=7 HEAD)" = "$commit" ] || { echo "$dir is not at $commit" >&2; exit 1; }
    [ -z "$(git -C "$dir" status --porcelain)" ] || { echo "$dir is not clean" >&2; exit 1; }
    if [ ! -x "$dir/.venv/bin/irconstyle" ]; then
        python3 -m venv "$dir/.venv"
        "$dir/.venv/bin/pip" install -q torch==2.13.0
        "$dir/.venv/bin/pip" install -q -e "$dir"
    fi
}

run_one() {  # run_one NAME COMMIT: one experiment file in the worktree of its commit
    local name=$1 commit=$2 dir=$BASE/campaign_$2
    worktree "$dir" "$commit"
    # records already committed count as done on a machine that lost $OUT: those in
    # results/pending/, and the promoted ones in results/$name/ made at this commit (an older
    # experiment's records there, from another commit, do not)
    mkdir -p "$OUT/$name"
    if [ -d "$HERE/results/pending/$name" ]; then
        cp -rn "$HERE/results/pending/$name/." "$OUT/$name/"
    fi
    if [ -d "$HERE/results/$name" ]; then
        (cd "$HERE/results/$name" && find . -path '*/runs' -prune -o -name 'seed*.json' -print) |
            while read -r f; do
                grep -q "\"git_commit\": \"$commit" "$HERE/results/$name/$f" || continue
                mkdir -p "$OUT/$name/$(dirname "$f")"; cp -n "$HERE/results/$name/$f" "$OUT/$name/$f"
            done
    fi
    echo "=== $name at $commit $(date -Is)"
    (cd "$dir" && .venv/bin/irconstyle experiment "experiments/$name.yml" --jobs "$JOBS" \
        --no-progress --out-dir "$OUT/$name") || { echo "=== $name failed"; return 1; }
    echo "=== $name done $(date -Is)"
}

case "${1:-}" in
    run)
        mkdir -p "$OUT"
        for item in $ORDER; do
            run_one "${item%%:*}" "${item##*:}"
        done
        ;;
    collect)
        for item in $ORDER; do
            name=${item%%:*}
            [ -d "$OUT/$name" ] || continue
            (cd "$OUT/$name" && find . -path ./runs -prune -o -name 'seed*.json' -print) | while read -r f; do
                # a record already promoted into results/$name (the same bytes) stays there
                cmp -s "$OUT/$name/$f" "$HERE/results/$name/$f" && continue
                mkdir -p "$HERE/results/pending/$name/$(dirname "$f")"
                cp -p "$OUT/$name/$f" "$HERE/results/pending/$name/$f"
            done
        done
        find "$HERE/results/pending" -name 'seed*.json' | wc -l
        ;;
    promote)
        name=${2:?usage: $0 promote NAME}
        pending="$HERE/results/pending/$name"
        want=$(cd "$HERE" && python -c "import sys
from irconstyle.experiments.spec import load_spec, run_keys
print(len(run_keys(load_spec(sys.argv[1]))))" "experiments/$name.yml")
        have=$(find "$pending" -path '*/runs' -prune -o -name 'seed*.json' -print 2>/dev/null | wc -l)
        if [ "$have" != "$want" ]; then
            echo "promote: $name has $have of its $want runs in results/pending/$name; not promoted" >&2
            exit 1
        fi
        mkdir -p "$HERE/results/$name"
        find "$HERE/results/$name" -path '*/runs' -prune -o -name 'seed*.json' -print -exec rm {} +
        (cd "$pending" && find . -name 'seed*.json' -print) | while read -r f; do
            mkdir -p "$HERE/results/$name/$(dirname "$f")"
            cp -p "$pending/$f" "$HERE/results/$name/$f"
        done
        rm -r "$pending"
        cd "$HERE"
        # a validation-only pilot (score_test: false) has no test scores to summarise
        if python -c "import sys
from irconstyle.experiments.spec import load_spec
sys.exit(0 if load_spec(sys.argv[1]).score_test else 1)" "experiments/$name.yml"; then
            # an experiment whose reference arm is another experiment's (not re-run) is
            # summarised against that experiment's records, as its file's comment says
            case "$name" in
                guidelines|ablations) ref=(--reference constyle --reference-results results/cpu_campaign) ;;
                lr_chosen_guidelines) ref=(--reference constyle --reference-results results/lr_chosen_denoise25) ;;
                *) ref=() ;;
            esac
            python -m irconstyle experiment "experiments/$name.yml" --summary ${ref[@]+"${ref[@]}"}
        fi
        python -c "from irconstyle.experiments.claims import refresh; refresh('results/claims.yaml')"
        python -m irconstyle.book.evidence.synthesis --write
        echo "promoted $name ($want runs): now re-execute the chapters that read results/$name/"
        echo "and update their hand-written sentences (grep -l $name book/notebooks/*.ipynb)"
        ;;
    drift)
        # drift COMMIT EXPERIMENT TASK ARM SEED: re-train one committed run at COMMIT (in its
        # clean worktree, one thread like the campaign's runs) and measure what differs from
        # the record (irconstyle.experiments.drift) into results/drift/
        commit=${2:?usage: $0 drift COMMIT EXPERIMENT TASK ARM SEED}; name=${3:?}; task=${4:?}; arm=${5:?}; seed=${6:?}
        # the newest record: one still in pending/ replaces the promoted one when promoted
        old="$HERE/results/pending/$name/$task/$arm/seed$seed.json"
        [ -f "$old" ] || old="$HERE/results/$name/$task/$arm/seed$seed.json"
        [ -f "$old" ] || { echo "drift: no committed record of $name/$task/$arm/seed$seed" >&2; exit 1; }
        dir=$BASE/campaign_$commit
        worktree "$dir" "$commit"
        scratch="$OUT/drift_$commit/$name"
        mkdir -p "$scratch"
        # every other record of the arm counts as done, so the runner trains this one only
        for src in "$HERE/results/pending/$name" "$HERE/results/$name"; do
            [ -d "$src" ] && (cd "$src" && find . -path ./runs -prune -o -path "./*/$arm/seed*.json" -print) |
                while read -r f; do
                    [ "$f" = "./$task/$arm/seed$seed.json" ] && continue
                    mkdir -p "$scratch/$(dirname "$f")"; cp -n "$src/$f" "$scratch/$f"
                done
        done
        echo "=== drift: $name/$task/$arm/seed$seed at $commit $(date -Is)"
        (cd "$dir" && .venv/bin/irconstyle experiment "experiments/$name.yml" --only "$arm" --jobs 2 \
            --no-progress --out-dir "$scratch")
        # the checkout's python: an older commit may not have the drift module
        (cd "$HERE" && python -m irconstyle.experiments.drift "${old#"$HERE"/}" "$scratch/$task/$arm/seed$seed.json" \
            --out "results/drift/${name}_${task}_${arm}_seed${seed}_at_$commit.json")
        ;;
    *)
        echo "usage: $0 run|collect|promote NAME|drift COMMIT EXPERIMENT TASK ARM SEED" >&2; exit 2 ;;
esac
