#!/usr/bin/env bash
# Run by Snakemake after it creates this conda env: one OpenCV (see the Makefile and pyproject.toml).
set -euo pipefail
python -m pip uninstall --quiet -y opencv-python opencv-python-headless
python -m pip install --quiet --no-deps --force-reinstall "opencv-python-headless==4.14.0.94"
