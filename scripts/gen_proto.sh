#!/usr/bin/env bash
# Regenerate python/gopark/formats/profile_pb2.py from profile.proto.
#
# Needs grpcio-tools (pip install grpcio-tools). The proto is compiled with the include
# root at python/ so it registers as "gopark/formats/profile.proto" in protobuf's default
# descriptor pool and cannot clash with another library's profile.proto.
#
# protoc stamps the gencode with its own protobuf version and a check that the runtime is
# at least that new. gopark supports protobuf>=5.28 (pyproject.toml), and the rest of the
# gencode only uses APIs that 5.28 has, so the check is removed.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -Ipython --python_out=python python/gopark/formats/profile.proto
python - <<'PY'
import re
from pathlib import Path

path = Path("python/gopark/formats/profile_pb2.py")
code = path.read_text()
code, n = re.subn(r"_runtime_version\.ValidateProtobufRuntimeVersion\(\n(?:.*\n)*?\)\n", "", code)
code = code.replace("from google.protobuf import runtime_version as _runtime_version\n", "")
assert n == 1, "protoc's version check not found: check the gencode by hand"
path.write_text(code)
PY
echo "wrote python/gopark/formats/profile_pb2.py"
