#!/usr/bin/env bash
# ConStyle's codes of the medium set's 12 test photos, clean and under the four degradations
# at several strengths (irconstyle.evaluation.degraded_codes), from fifteen encoders:
#   untrained  seeds 0-4   a freshly initialised encoder (torch.manual_seed(seed))
#   constyle   seeds 0-4   trained with ConStyle's pretext (degraded query, clean key):
#                          cpu_campaign.yml, task denoise25, arm constyle
#   instance   seeds 0-4   trained by instance discrimination (two views of the same
#                          degraded patch): guidelines.yml, task denoise25, arm instance
# Writes $OUT (.npz: raw codes and labels) and the .json beside it (the latent measures on raw
# and L2-normalised codes, with provenance). The book's latent-space chapter reads both.
# Then the same for every arm of guidelines.yml and its reference (cpu_campaign's constyle),
# seeds 0-4, into $OUT_ARMS (default results/latent/guideline_arms.npz): the guidelines
# chapter reads the measures of each arm from its .json.
# Each encoder is labelled in the files by what was given: "untrained_seed<s>" or the weights
# path, whose ".../<arm>/seed<s>/last.pt" names the pretext and the seed.
#
#   bash experiments/latent_codes.sh                        # after both campaigns finished
#   CPU_CAMPAIGN=/elsewhere/cpu_campaign GUIDELINES=/elsewhere/guidelines bash experiments/latent_codes.sh
#   ALLOW_MISSING=1 OUT=/tmp/latent/codes.npz bash experiments/latent_codes.sh   # a partial trial
#
# Run from the repository root; minutes on one CPU thread (132 images per encoder).
set -euo pipefail

CPU_CAMPAIGN=${CPU_CAMPAIGN:-results/cpu_campaign}   # cpu_campaign.yml's out_dir
GUIDELINES=${GUIDELINES:-results/guidelines}         # guidelines.yml's out_dir
OUT=${OUT:-results/latent/codes.npz}
OUT_ARMS=${OUT_ARMS:-results/latent/guideline_arms.npz}
read -r -a SEEDS <<< "${SEEDS:-0 1 2 3 4}"   # the campaigns' five seeds (SEEDS="0 1 2": fewer)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

# checkpoints ROOT ARM...: the last.pt of every seed of each arm of the experiment whose out_dir
# is ROOT (task denoise25), into $weights; a run counts as finished when its record exists
# (ROOT/denoise25/ARM/seed<s>.json, written once at the end): a last.pt alone may be mid-run.
checkpoints() {
    local root=$1 arm s f missing=()
    shift
    for arm in "$@"; do
        for s in "${SEEDS[@]}"; do
            f="$root/runs/denoise25/$arm/seed$s/last.pt"
            if [[ -f "$root/denoise25/$arm/seed$s.json" && -f "$f" ]]; then weights+=("$f")
            else missing+=("$f"); fi
        done
    done
    if (( ${#missing[@]} )); then
        printf 'not finished (no record) or missing: %s\n' "${missing[@]}" >&2
        if [[ "${ALLOW_MISSING:-0}" != 1 ]]; then
            echo "latent_codes.sh: the campaigns have not finished (set ALLOW_MISSING=1 for a partial trial)" >&2
            exit 1
        fi
    fi
}

# 1. The latent-space chapter: untrained, ConStyle's pretext, instance discrimination.
weights=()
checkpoints "$CPU_CAMPAIGN" constyle
checkpoints "$GUIDELINES" instance
untrained=()
for s in "${SEEDS[@]}"; do untrained+=(--untrained-seed "$s"); done
irconstyle latent ${weights[@]+--weights "${weights[@]}"} "${untrained[@]}" --out "$OUT"

# 2. The guidelines chapter: the reference and every arm of guidelines.yml.
weights=()
checkpoints "$CPU_CAMPAIGN" constyle
checkpoints "$GUIDELINES" inbatch k64 k3840 code_only instance
if (( ${#weights[@]} )); then
    irconstyle latent --weights "${weights[@]}" --out "$OUT_ARMS"
fi
