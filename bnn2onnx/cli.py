"""bnn2onnx command line: convert (one model, or many into a folder), verify, inspect, bench, serve, export-triton.

Errors print one line (`bnn2onnx: error: ...`) and exit with status 2; --debug shows the traceback instead.
`convert` writes its output only after every check passed, through a temporary file renamed into place, so a
failed or interrupted run never leaves a half-written model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from rich import box
from rich.console import Console
from rich.table import Table

from bnn2onnx import __version__
from bnn2onnx.errors import ConversionError, first_line
from bnn2onnx.frontends.onnx_float import read_onnx
from bnn2onnx.frontends.python_factory import parse_kwargs
from bnn2onnx.native_stderr import quiet_native_stderr

if TYPE_CHECKING:
    from bnn2onnx.converter import ConversionResult

console = Console(highlight=False)


def _mib(size: float) -> str:
    return f"{size / 2**20:.2f} MiB"


@contextmanager
def _stage_display():
    with console.status("starting") as status:
        yield lambda stage: status.update(stage)


def _load_inputs(path: str | None) -> np.ndarray | None:
    if path is None:
        return None
    try:
        return np.load(path)
    except (OSError, ValueError) as error:
        raise ConversionError(f"{path}: cannot read as a .npy array: {error}") from error


def check_writable(path: Path) -> None:
    """Before any work: the output's directory exists and may be written to, and the path is not a directory."""
    if path.suffix != ".onnx":
        raise ConversionError(f"output {path} must end in .onnx")
    if path.is_dir():
        raise ConversionError(f"output {path} is a directory")
    directory = path.parent
    if not directory.is_dir():
        raise ConversionError(f"output directory {directory} does not exist")
    try:  # a file made and removed at once: what permissions alone do not tell (root, read-only file systems)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise ConversionError(f"cannot write {path}: {error.strerror}") from error


def _file_mode(path: Path) -> int:
    """The mode of the file a write replaces, else what the umask gives a new file (0644 typically)."""
    if path.exists():
        return path.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomically(model: onnx.ModelProto, path: Path) -> None:
    """Writes through a temporary file in the same directory, so a failure never leaves half a model."""
    mode = _file_mode(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        onnx.save(model, temporary)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _print_conversion(result: ConversionResult, source: str) -> None:
    from bnn2onnx.inspect_model import short_names

    layers = [("[green]binary[/green],", layer) for layer in result.binary_layers] + \
        [("[yellow]float[/yellow]:", layer) for layer in result.float_layers]
    names = short_names([layer.name for _, layer in layers])
    table = Table(title="Layers", show_lines=False)
    # Names and ops whole (the note wraps): at 80 columns a cut name cannot be found in the model.
    table.add_column("layer", no_wrap=True, min_width=max(map(len, names), default=5))
    table.add_column("op", no_wrap=True)
    table.add_column("result", overflow="fold")
    for name, (kind, layer) in zip(names, layers):
        table.add_row(name, layer.op, f"{kind} {layer.note}")
    console.print(table)
    changes = ", ".join(f"{op} {change:+d}" for op, change in result.pipeline.op_changes().items())
    console.print(f"ops: {changes or 'no change'}")
    for pass_result in result.pipeline.results:
        for node, reason in pass_result.refused:
            console.print(f"[yellow]not converted[/yellow] {node}: {reason} ({pass_result.name})")
    deviations = Counter(kind for r in result.pipeline.results for _, kind in r.deviations)
    for kind, count in deviations.items():
        console.print(f"[yellow]note[/yellow] {count} binarizer(s) differ from the source at one value: {kind}")
    source_path = Path(source)
    if source_path.is_dir():
        source_size = f"source {_mib(sum(f.stat().st_size for f in source_path.rglob('*') if f.is_file()))}, "
    else:
        source_size = f"source {_mib(source_path.stat().st_size)}, " if source_path.is_file() else ""
    console.print(f"size: {source_size}float ONNX {_mib(result.float_bytes)}, "
                  f"converted {_mib(result.converted_bytes)} "
                  f"({result.float_bytes / max(result.converted_bytes, 1):.1f}x smaller than float ONNX)")
    console.print(f"{len(result.binary_layers)} binary layers, {len(result.float_layers)} float layers")
    for message in result.unrecognised_binarizers:
        console.print(f"[bold yellow]warning[/bold yellow] layer {message}")


def _is_bulk(args: argparse.Namespace) -> bool:
    """Many models into a folder: several sources, a manifest, or an output that is a folder (an output ending in
    .onnx is always a file)."""
    folder = args.output.endswith("/") or (Path(args.output).is_dir() and not args.output.endswith(".onnx"))
    return len(args.source) != 1 or args.manifest is not None or folder


def cmd_convert(args: argparse.Namespace) -> int:
    if _is_bulk(args):
        return _convert_many(args)
    from bnn2onnx.converter import convert_with_report

    source = args.source[0]
    output = Path(args.output)
    check_writable(output)
    with _stage_display() as progress:
        result = convert_with_report(source, inputs=_load_inputs(args.inputs), samples=args.samples,
                                     seed=args.seed, verify_result=not args.no_verify,
                                     trust_lambda=args.trust_lambda, factory_kwargs=parse_kwargs(args.kwargs),
                                     progress=progress)
    _print_conversion(result, source)
    if result.verification is not None:
        console.print(f"verification: {result.verification.summary()}")
        if not result.verification.passed:
            raise ConversionError(f"the converted model disagrees with the source; {output} not written")
    write_atomically(result.model, output)
    console.print(f"wrote {output}")
    if args.report_json:
        Path(args.report_json).write_text(json.dumps({
            "binary_layers": len(result.binary_layers), "float_layers": len(result.float_layers),
            "verification": result.verification.summary() if result.verification else "not verified"}))
    return 0


def _convert_many(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bnn2onnx import bulk_convert

    sources = list(args.source) + (bulk_convert.read_manifest(Path(args.manifest)) if args.manifest else [])
    if not sources:
        raise ConversionError("no source to convert: name models, or a --manifest listing them")
    items = bulk_convert.plan(sources, Path(args.output))
    options = [*(["--no-verify"] if args.no_verify else []), *(["--trust-lambda"] if args.trust_lambda else []),
               "--samples", str(args.samples), "--seed", str(args.seed),
               *(["--inputs", args.inputs] if args.inputs else []), *(["--kwargs", args.kwargs] if args.kwargs else [])]
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("converting", total=len(items))

        def finished(result: bulk_convert.BulkResult) -> None:
            bar.console.print(f"{'[green]ok[/green]' if result.ok else '[red]failed[/red]'} {result.item.source}"
                              f" ({result.seconds:.1f} s)")
            bar.advance(task)

        results = bulk_convert.convert_all(items, options, args.jobs, args.timeout, finished)
    table = Table(title=f"{sum(r.ok for r in results)} of {len(results)} converted into {args.output}")
    for column in ("source", "output", "result", "binary", "float", "time", "verification or error"):
        table.add_column(column, overflow="fold", justify="right" if column in ("binary", "float", "time") else "left")
    for r in results:
        table.add_row(r.item.source, r.item.output.name if r.ok else "-",
                      "[green]ok[/green]" if r.ok else "[red]failed[/red]",
                      str(r.binary_layers) if r.ok else "", str(r.float_layers) if r.ok else "", f"{r.seconds:.1f} s",
                      r.message)
    console.print(table)
    return 0 if all(r.ok for r in results) else 1


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from bnn2onnx.serving.ray_serve import ServeConfig, serve_model
    except ImportError as error:
        raise ConversionError(f'serving needs the serve extra ({first_line(error)}): pip install "bnn2onnx[serve]"') \
            from error
    model = Path(args.model)
    read_onnx(model)  # a clear error for a missing or corrupt file, before Ray starts
    config = ServeConfig(replicas=args.replicas, threads=args.threads, max_batch_size=args.max_batch_size,
                         batch_wait_ms=args.batch_wait_ms, max_body_bytes=int(args.max_body_mb * 2**20))
    console.print(f"serving {model} at http://{args.host}:{args.port}/ ({args.replicas} replica(s), "
                  f"{args.threads} thread(s) each): POST JSON or .npy, GET /healthz; Ctrl-C stops")
    serve_model(model, config, args.host, args.port, args.address)
    return 0


def cmd_export_triton(args: argparse.Namespace) -> int:
    from bnn2onnx.serving.triton import export_triton

    read_onnx(Path(args.model))
    entry = export_triton(Path(args.model), Path(args.repository), args.name, args.max_batch_size, args.instances,
                          args.repository_in_server)
    console.print(f"wrote {entry}/ (config.pbtxt, 1/model.onnx, the library)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from bnn2onnx.converter import feeds_from_array, load_source, random_inputs
    from bnn2onnx.verification import verify

    converted = read_onnx(Path(args.converted))
    with _stage_display() as progress:
        source = load_source(args.source, progress, trust_lambda=args.trust_lambda,
                             factory_kwargs=parse_kwargs(args.kwargs))
        inputs = _load_inputs(args.inputs)
        feeds = feeds_from_array(converted, inputs) if inputs is not None else \
            random_inputs(converted, args.samples, args.seed)
        progress("comparing")
        result = verify(source.predict(feeds), source.float_model, converted, feeds, source.values,
                        source_predict=source.predict)
    console.print(f"verification: {result.summary()}")
    return 0 if result.passed else 1


def cmd_inspect(args: argparse.Namespace) -> int:
    from bnn2onnx.inspect_model import compact, layer_rows, output_text, shape_text, short_names, tensor_shapes

    path = Path(args.model)
    model = read_onnx(path)
    shapes = tensor_shapes(model)
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for value in values:
            element = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
            console.print(f"{kind} {value.name}: {shape_text(shapes[value.name], batch_first=False)} {element}")
    rows = layer_rows(model)
    count = (lambda n: f"{n:,}") if args.wide else compact
    cells = [[name, r.op, output_text(r), count(r.binary_params), count(r.float_params), count(r.binary_macs),
              count(r.float_macs), f"{r.memory_bytes / 1024:.1f} KiB"]
             for name, r in zip([r.name for r in rows] if args.wide else short_names([r.name for r in rows]), rows)]
    totals = [sum(getattr(r, f) for r in rows) for f in ("binary_params", "float_params", "binary_macs",
                                                         "float_macs")]
    cells.append(["total", "", "", *(count(t) for t in totals), f"{sum(r.memory_bytes for r in rows) / 1024:.1f} KiB"])
    # Without --wide: no borders, one space between columns, two-line headers, and no cell narrower than its
    # longest value, so that at 80 columns no name or number is cut.
    table = Table(title=path.name, box=box.SQUARE if args.wide else None, collapse_padding=True, pad_edge=False,
                  header_style="bold", caption="output: shape without the batch; b: ±1 values packed 32 per int32")
    headers = ("layer", "op", "output", "1-bit params", "32-bit params", "1-bit MACs", "32-bit MACs", "memory")
    for index, header in enumerate(headers):
        table.add_column(header if args.wide else header.replace(" ", "\n"), justify="left" if index < 3 else "right",
                         no_wrap=args.wide, min_width=max(len(row[index]) for row in cells))
    for row in cells[:-1]:
        table.add_row(*row)
    table.add_row(*cells[-1], style="bold")
    console.print(table)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from bnn2onnx import benchmark
    from bnn2onnx.converter import random_inputs

    path = Path(args.model)
    feeds = random_inputs(read_onnx(path), args.batch, seed=0)
    if args.png:
        benchmark.pyplot()  # fail before the timing, not after it
    profile_runs = max(200, args.runs)
    with _stage_display() as progress:
        progress(f"timing {args.runs} runs")
        stats = benchmark.percentiles(benchmark.latencies_ms(path, feeds, args.threads, args.runs))
        progress(f"profiling nodes over {profile_runs} runs")
        nodes = benchmark.node_profile(path, feeds, args.threads, profile_runs)
    binary = benchmark.binary_share(nodes)
    if args.json:
        print(json.dumps({"model": str(path), "batch": args.batch, "threads": args.threads, "runs": args.runs,
                          "latency_ms": stats, "profile_runs": profile_runs, "binary_op_share": binary,
                          "nodes": [dataclasses.asdict(n) | {"ms_per_run": n.total_us / profile_runs / 1e3}
                                    for n in nodes]}, indent=1))
        return 0
    console.print(f"{path.name}: batch {args.batch}, {args.threads} thread(s), {args.runs} runs: "
                  + ", ".join(f"{k} {v:.3f} ms" for k, v in stats.items()))
    console.print(f"node time: bnn2onnx ops {binary:.1%}, standard ops {1 - binary:.1%} "
                  f"(profile of {profile_runs} runs after 5 warm-up runs)")
    table = Table(title="time per node (onnxruntime profiler)")
    for column in ("node", "op", "share", "time per run"):
        table.add_column(column, overflow="fold", justify="right" if column in ("share", "time per run") else "left")
    for node in nodes[: args.top]:
        table.add_row(node.name, node.op, f"{node.share:.1%}", f"{node.total_us / profile_runs / 1e3:.3f} ms")
    console.print(table)
    if args.png:
        benchmark.save_bar_chart(nodes, Path(args.png), f"{path.name}: batch {args.batch}, {args.threads} thread(s)")
        console.print(f"wrote {args.png}")
    return 0


SOURCE_HELP = ("the source model: a Keras/Larq .h5, .keras or SavedModel directory, a torch.export program (.pt2), "
               "a float or QONNX .onnx, or package.module:function / file.py:function that builds a Keras model or "
               "returns (torch module, example input)")


def build_parser() -> argparse.ArgumentParser:
    # --debug works before or after the command: the command's copy only sets it when given (SUPPRESS).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error")
    parser = argparse.ArgumentParser(prog="bnn2onnx", description="Binarized networks to ONNX with bit-packed ops")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser.add_argument("--version", action="version", version=f"bnn2onnx {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser("convert", parents=[common], help="convert a Keras/Larq model (.h5, .keras, "
                                  "SavedModel dir), a torch.export program (.pt2), or a float or QONNX .onnx")
    convert.add_argument("source", nargs="*", help=SOURCE_HELP + "; several sources convert into the folder -o "
                         "names, each in its own process")
    convert.add_argument("-o", "--output", required=True, help="output .onnx path, or a folder (ending in /) for "
                         "several models, written as NAME.onnx")
    convert.add_argument("--manifest", help="a file listing sources to convert into the -o folder, one per line")
    convert.add_argument("--jobs", type=int, default=1, help="several models: conversions at once (default 1)")
    convert.add_argument("--timeout", type=float, help="several models: seconds one conversion may take")
    convert.add_argument("--report-json", help=argparse.SUPPRESS)  # a bulk conversion's child reports here
    verify = commands.add_parser("verify", parents=[common], help="compare a converted model with its source")
    verify.add_argument("source", help=SOURCE_HELP)
    verify.add_argument("converted", help="the converted .onnx")
    for command in (convert, verify):
        command.add_argument("--inputs", help="a .npy batch to verify on (default: random inputs)")
        command.add_argument("--samples", type=int, default=16, help="random inputs to verify on (default 16)")
        command.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
        command.add_argument("--trust-lambda", action="store_true",
                             help="let Keras run the Python code of the model's Lambda layers (only for a file you "
                                  "trust: Keras refuses it by default)")
        command.add_argument("--kwargs", help="keyword arguments as JSON for a module:function source, "
                                              "e.g. '{\"weights\": null}'")
    convert.add_argument("--no-verify", action="store_true", help="skip the comparison with the source")
    convert.set_defaults(run=cmd_convert)
    verify.set_defaults(run=cmd_verify)

    inspect = commands.add_parser("inspect", parents=[common],
                                  help="per-layer parameters, MACs and memory of a converted model")
    inspect.add_argument("model", help="a converted .onnx")
    inspect.add_argument("--wide", action="store_true", help="full layer names and exact counts (needs a wide "
                         "terminal)")
    inspect.set_defaults(run=cmd_inspect)

    bench = commands.add_parser("bench", parents=[common],
                                help="latency percentiles and per-node profile in onnxruntime")
    bench.add_argument("model", help="a converted (or any) .onnx")
    bench.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    bench.add_argument("--batch", type=int, default=1, help="inputs per run (default 1)")
    bench.add_argument("--runs", type=int, default=100, help="timed runs (default 100)")
    bench.add_argument("--top", type=int, default=15, help="nodes to list (default 15)")
    bench.add_argument("--png", help="also draw the per-node shares as a bar chart (needs matplotlib: the plot extra)")
    bench.add_argument("--json", action="store_true", help="print the results as JSON (for scripts)")
    bench.set_defaults(run=cmd_bench)

    serve = commands.add_parser("serve", parents=[common], help="serve a converted model over HTTP with Ray Serve "
                                "(the serve extra)")
    serve.add_argument("model", help="a converted .onnx")
    serve.add_argument("--replicas", type=int, default=1, help="replicas of the model (default 1)")
    serve.add_argument("--threads", type=int, default=1, help="onnxruntime threads per replica (default 1)")
    serve.add_argument("--max-batch-size", type=int, default=16, help="requests joined into one run (default 16)")
    serve.add_argument("--batch-wait-ms", type=float, default=2.0,
                       help="how long a request waits for others to join its run (default 2)")
    serve.add_argument("--max-body-mb", type=float, default=16.0, help="largest request body (default 16 MiB)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--address", help="the Ray cluster to join (default: start a local Ray instance)")
    # A server runs for long: Ray's own log lines and errors stay on stderr.
    serve.set_defaults(run=cmd_serve, quiet_stderr=False)

    triton = commands.add_parser("export-triton", parents=[common], help="write a Triton Inference Server "
                                 "model-repository entry (onnxruntime backend) for a converted model")
    triton.add_argument("model", help="a converted .onnx")
    triton.add_argument("repository", help="the model repository folder (must exist)")
    triton.add_argument("--name", help="the model's name in the repository (default: the file's name)")
    triton.add_argument("--max-batch-size", type=int, default=64,
                        help="Triton's max_batch_size when every input and output has a free batch dimension "
                             "(default 64; 0 turns Triton's batching off)")
    triton.add_argument("--instances", type=int, default=1, help="model instances on the CPU (default 1)")
    triton.add_argument("--repository-in-server", default="/models",
                        help="where the server sees the repository, for the library's path in config.pbtxt "
                             "(default /models)")
    triton.set_defaults(run=cmd_export_triton)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        if args.debug or not getattr(args, "quiet_stderr", True):
            return args.run(args)
        with quiet_native_stderr():
            return args.run(args)
    except Exception as error:  # one line for the user; the traceback only with --debug
        if args.debug:
            raise
        message = first_line(error)
        if not isinstance(error, (ConversionError, OSError)):
            message = f"internal error ({type(error).__name__}: {message}); rerun with --debug for the traceback"
        print(f"bnn2onnx: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
