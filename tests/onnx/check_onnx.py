"""Runs the ONNX checker (onnx.checker.check_model with full_check, which includes strict shape
inference) on every case that write_onnx_cases wrote (FOLDER/cases.txt), and checks that each
graph has one input and one output whose first dimension is the dynamic batch.

Prints one line per file; exit status 0 when all pass, 1 otherwise; "SKIPPED: ..." and 0 when
the onnx package (Debian's python3-onnx) is missing.

Usage: python3 check_onnx.py FOLDER
"""
import os
import sys


def batch_is_dynamic(values):
    return len(values) == 1 and values[0].type.tensor_type.shape.dim[0].dim_param != ""


def check(onnx, path):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    graph = model.graph
    if not batch_is_dynamic(graph.input) or not batch_is_dynamic(graph.output):
        raise ValueError("the input and the output need a dynamic batch dimension")
    opset = [entry.version for entry in model.opset_import if entry.domain == ""]
    if opset != [17]:
        raise ValueError(f"opset {opset}, expected [17]")
    return f"{len(graph.node)} nodes, {len(graph.initializer)} initializers"


def main():
    if len(sys.argv) != 2:
        print("usage: python3 check_onnx.py FOLDER", file=sys.stderr)
        return 2
    try:
        import onnx
    except ImportError:
        print(f"SKIPPED: the onnx package is not installed for {sys.executable} (Debian: apt-get install python3-onnx)")
        return 0
    folder = sys.argv[1]
    with open(os.path.join(folder, "cases.txt"), encoding="utf-8") as listing:
        names = [line.strip() for line in listing if line.strip()]
    failed = []
    for name in names:
        try:
            print(f"ok   {name}: {check(onnx, os.path.join(folder, name + '.onnx'))}")
        except Exception as error:  # every checker failure is reported, then the next file
            print(f"FAIL {name}: {error}")
            failed.append(name)
    print(f"{len(names) - len(failed)} passed, {len(failed)} failed (onnx {onnx.__version__} checker, full_check)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
