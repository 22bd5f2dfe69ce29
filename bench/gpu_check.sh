#!/usr/bin/env bash
# The CUDA checks, in one run (for a machine with a GPU; CI never runs this).
#   bash bench/gpu_check.sh VARROA_DATA_YAML PHOTOS_DIR OUT_DIR
# 1. bench/train_step.py: fit vs a hand-written loop, fp32 and AMP;
# 2. examples/varroa_anchor_training.py: real varroa boards, default vs fitted anchors;
# 3. yolo2retina predict with the fitted-anchor model on the real phone photos (tiled).
set -uo pipefail
yaml=$1 photos=$2 out=$3
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name(0))"
echo "=== train_step (resnet50_fpn, 640 px, batch 8)"
timeout 100 python3 bench/train_step.py --device cuda --backbone resnet50_fpn --img-size 640 \
  --batch-size 8 --images 96 --workers 4 --repeats 2 --no-progress 2>&1 | tail -25
echo "=== varroa: default vs fitted anchors"
timeout 200 python3 examples/varroa_anchor_training.py --data "$yaml" --epochs "${EPOCHS:-25}" \
  --min-size 1024 --batch-size 4 --out "$out/varroa" 2>&1 | grep -vE "^\s*$" | tail -40
echo "=== predict on the real photos with the fitted-anchor model"
ckpt="$out/varroa/auto/best.pt"
timeout 60 python3 -m yolo2retina predict --weights "$ckpt" --source "$photos" --tile auto \
  --score 0.3 --device cuda --out "$out/predict" --save-json 2>&1 | tail -12 || true
python3 - "$out" <<'PY'
import sys, pathlib
from PIL import Image
out = pathlib.Path(sys.argv[1])
for p in sorted((out / "predict").rglob("*.png"))[:1]:
    im = Image.open(p); im.thumbnail((1600, 1600)); im.convert("RGB").save(out / "drawing.jpg", quality=88)
    print("drawing", p.name, "->", out / "drawing.jpg")
PY
# keep what is worth reading: logs, curves, counts, one drawing
find "$out" -name "*.pt" -delete
find "$out/predict" -name "*.png" -delete 2>/dev/null || true
