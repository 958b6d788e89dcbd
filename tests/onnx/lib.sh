# Shared by the ONNX tests: a Python with onnx (Debian's python3-onnx lives in
# /usr/bin/python3's path, not necessarily in the first python3 on PATH).
onnx_python() {
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null && "$py" -c "import onnx, numpy" 2>/dev/null; then echo "$py"; return 0; fi
  done
  return 1
}
