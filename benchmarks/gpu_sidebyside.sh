#!/usr/bin/env bash
# The GPU side-by-side run of issue 18 (one H100-class GPU, under 8 minutes): the six models,
# training (batch 16 / 8, 128x128) and inference (512, 1024), the three comparisons, 50 timed
# steps per side. The JSON is rewritten after every row, so if the 470-second guard stops
# the run, the rows measured so far are kept and the file says "complete": false.
# Usage: benchmarks/gpu_sidebyside.sh /path/to/release/checkout
set -euo pipefail
RELEASE=${1:?usage: $0 RELEASE_CHECKOUT}
python -c "import einops" 2>/dev/null || pip install -q einops
# First the CUDA-only tests (no host sync inside a training step, fp32 GPU outputs equal the
# CPU's); a failure is reported and the timing still runs.
python -m pytest -q -p no:cacheprovider tests/test_gpu.py -rs || echo "tests/test_gpu.py FAILED"
exec timeout 470 python benchmarks/sidebyside.py --release "$RELEASE" --device cuda \
    --steps 50 --warmup 3 --comparisons fp32 bf16 best --sizes 512 1024 --out sidebyside_cuda.json
