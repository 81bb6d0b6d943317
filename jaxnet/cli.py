"""The ``jaxnet`` command (also ``python -m jaxnet``).

Each subcommand is a function ``_cmd_<name>(args) -> int`` registered in :func:`build_parser`. Heavy
modules are imported inside the commands, so ``jaxnet --help`` answers at once. Errors a user can fix
(bad arguments, missing files) are printed as one line and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


class UserError(Exception):
    """An error the user can fix; the CLI prints its message and exits with status 2."""


def _cmd_gradcheck(args: argparse.Namespace) -> int:
    import jax.numpy as jnp

    from jaxnet import gradcheck

    dtype = {"float64": jnp.float64, "float32": jnp.float32}[args.dtype]
    tolerance = gradcheck.FLOAT64_TOLERANCE if args.dtype == "float64" else gradcheck.FLOAT32_TOLERANCE
    results = gradcheck.run_standard_checks(dtype, seed=args.seed)
    print(format_gradcheck_table(results, args.dtype, tolerance))
    failed = [check.name for check, result in results if not _passes(result, args.dtype, tolerance)]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from jaxnet import report

    unknown = [p for p in args.parts or [] if p not in report.PARTS]
    if unknown:
        raise UserError(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(report.PARTS)}")
    path = report.write_report(Path(args.out), args.parts or None, quick=args.quick)
    print(f"wrote {path}")
    return 0


# Flags of `jaxnet train` -> TrainConfig fields. None leaves the model's default (jaxnet.configs).
_TRAIN_FLAGS = {
    "dataset": ("--dataset", str, "dataset name: fashion_mnist, cifar10 or a tensorflow-datasets name"),
    "data_dir": ("--data-dir", str, "folder with the dataset's files (else the default place or env variable)"),
    "epochs": ("--epochs", int, "number of epochs in all"),
    "batch_size": ("--batch-size", int, "batch size"),
    "learning_rate": ("--lr", float, "learning rate of epoch 1 (epoch e uses lr * lr_decay**(e-1))"),
    "lr_decay": ("--lr-decay", float, "learning rate multiplier after every epoch, in (0, 1]"),
    "optimizer": ("--optimizer", str, "sgd, momentum or adam"),
    "momentum": ("--momentum", float, "momentum (with --optimizer momentum)"),
    "reg": ("--reg", float, "L2 regularization strength on the weights (two-layer, linear)"),
    "weight_decay": ("--weight-decay", float, "decoupled weight decay (AdamW; the CNN)"),
    "hidden_dim": ("--hidden-dim", int, "hidden layer width (two-layer)"),
    "weight_scale": ("--weight-scale", float, "std of the initial weights (two-layer, linear)"),
    "val_size": ("--val-size", int, "training images held out for validation"),
    "train_size": ("--train-size", int, "train on only this many images"),
    "seed": ("--seed", int, "seed of every random choice"),
}


def _start_processes(args: argparse.Namespace) -> None:
    """With --coordinator/--num-processes/--process-id (or their JAX_* variables): joins the other processes
    of a multi-process run (``main`` calls it before anything else touches JAX)."""
    from jaxnet import distributed

    flags = {"--coordinator": args.coordinator, "--num-processes": args.num_processes,
             "--process-id": args.process_id}
    given = [flag for flag, value in flags.items() if value is not None]
    if given and len(given) < len(flags):
        raise UserError(f"{', '.join(flags)} go together: give all three (or none, for one process); "
                        f"only {', '.join(given)} given")
    env = (distributed.ENV_COORDINATOR, distributed.ENV_NUM_PROCESSES, distributed.ENV_PROCESS_ID)
    if given or any(os.environ.get(name) for name in env):
        try:
            distributed.initialize(args.coordinator, args.num_processes, args.process_id)
        except distributed.DistributedError as error:
            raise UserError(str(error)) from None


def _cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from jaxnet import configs, data, distributed, plots, train
    from jaxnet.checkpoint import CheckpointError, checkpoint_path

    config = configs.PRESETS[args.model]()
    try:
        saved = train.saved_config(args.out) if args.resume else None
        if saved is not None and saved.model == config.model:
            config = saved  # --resume continues with the run's own settings; flags given now override them
        elif saved is not None:
            command = {preset().model: name for name, preset in configs.PRESETS.items()}.get(saved.model, saved.model)
            raise UserError(f"{checkpoint_path(args.out)} holds a {saved.model!r} model, not {config.model!r}: "
                            f"continue it with `jaxnet train {command} --resume`, or give this model another --out")
        overrides = {field: getattr(args, field) for field in _TRAIN_FLAGS if getattr(args, field) is not None}
        if args.model == "cnn":
            unused = [_TRAIN_FLAGS[f][0] for f in ("hidden_dim", "weight_scale", "reg") if f in overrides]
            if unused:
                raise UserError(f"{', '.join(unused)}: flag{'s' if len(unused) > 1 else ''} of the two-layer net "
                                "and the linear classifier; the CNN's architecture is fixed "
                                "(regularize it with --weight-decay)")
        if args.model == "linear" and "hidden_dim" in overrides:
            raise UserError("--hidden-dim: the linear classifier has no hidden layer (scores = X W + b); "
                            "train two-layer for one")
        config = dataclasses.replace(config, **overrides)
        config.validate()
        result = train.fit(config, args.out, resume=args.resume, overwrite=args.overwrite,
                           progress=not args.no_progress)
    except (train.ConfigError, data.DataError, CheckpointError) as error:
        raise UserError(str(error)) from None
    except train.TrainingDiverged as error:
        print(f"jaxnet train: {error}", file=sys.stderr)
        return 1
    if not distributed.is_main_process():  # process 0 plots and reports
        return 0
    paths = plots.plot_training(result.metrics, Path(args.out) / "training.png", title=f"{args.model} on {config.dataset}")
    print(f"final: train acc {result.metrics['train_accuracy'][-1]:.4f}, "
          f"val acc {result.metrics['val_accuracy'][-1]:.4f}")
    print(f"wrote {Path(args.out) / 'checkpoint.msgpack'}, {Path(args.out) / 'metrics.json'}, "
          f"{', '.join(str(p) for p in paths)}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from jaxnet import data, train
    from jaxnet.checkpoint import CheckpointError

    try:
        acc = train.evaluate_run(args.run, split=args.split, data_dir=args.data_dir)
    except (CheckpointError, data.DataError) as error:
        raise UserError(str(error)) from None
    print(f"{args.split} accuracy: {acc:.4f}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from jaxnet import images, train
    from jaxnet.checkpoint import CheckpointError

    try:
        classifier, params, meta = train.load_run(args.run)
    except CheckpointError as error:
        raise UserError(str(error)) from None
    loaded = images.load_grayscale_28(args.images)
    for message in loaded.warnings.values():
        print(f"warning: {message}", file=sys.stderr)
    names = meta.get("class_names") or [str(i) for i in range(meta["model_config"]["num_classes"])]
    readable = [p for p in args.images if p not in loaded.errors]
    if readable:
        scores = np.asarray(classifier.apply(params, classifier.preprocess(loaded.images)))
        for path, row in zip(readable, scores):
            probs = np.exp(row - row.max())
            probs /= probs.sum()
            best = int(probs.argmax())
            print(f"{path}: {best} {names[best]} ({probs[best]:.3f})")
    for message in loaded.errors.values():
        print(f"jaxnet predict: error: {message}", file=sys.stderr)
    return 1 if loaded.errors else 0


def _cmd_classify(args: argparse.Namespace) -> int:
    import json

    from jaxnet import hub
    from jaxnet.hub import classify, figure

    if args.top < 1:
        raise UserError(f"--top must be at least 1, got {args.top}")
    if args.figure and Path(args.figure).suffix.lower().lstrip(".") not in figure.FORMATS:
        raise UserError(f"--figure {args.figure}: use a .png, .jpg, .pdf or .svg file name")
    try:
        model = hub.load(args.model)
    except hub.HubError as error:
        raise UserError(str(error)) from None
    results = classify.classify_files(model, args.images, top=args.top)
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2))
    else:
        print(classify.format_results(results))
    failed = [r for r in results if r.error is not None]
    for result in failed if not args.json else []:
        print(f"jaxnet classify: error: {result.error}", file=sys.stderr)
    if args.figure and len(failed) < len(results):
        path = figure.plot_classifications(results, model.preprocessing, args.figure, top=min(args.top, 5))
        print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 1 if failed else 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from jaxnet import bench

    names = [name.replace("-", "_") for name in args.names]
    unknown = [name for name in names if name not in bench.BENCHMARKS]
    if unknown:
        raise UserError(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(bench.BENCHMARKS)}")
    path, outcomes = bench.run_benchmarks(args.out, names, quick=args.quick)
    failed = [o.name for o in outcomes if o.failed]
    print(f"wrote {path}")
    if failed:
        print(f"jaxnet bench: failed: {', '.join(failed)} (errors in {path})", file=sys.stderr)
        return 1
    return 0


def _passes(result, dtype_name: str, tolerance: float) -> bool:
    # In float32 finite differences are too coarse to hold to a tolerance (see jaxnet.gradcheck).
    error = result.max_error if dtype_name == "float64" else result.vjp_error
    return error < tolerance


def format_gradcheck_table(results, dtype_name: str, tolerance: float) -> str:
    """A markdown table of :func:`jaxnet.gradcheck.run_standard_checks` results."""
    held = "both errors" if dtype_name == "float64" else "the jax.grad error"
    lines = [
        f"Gradient checks in {dtype_name}: relative error of each hand-written backward pass; "
        f"pass when {held} < {tolerance:g}.",
        "",
        "| check | shapes | vs jax.grad (vjp) | vs numeric | result |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for check, result in results:
        verdict = "pass" if _passes(result, dtype_name, tolerance) else "FAIL"
        lines.append(
            f"| {check.name} | {check.shapes} | {result.vjp_error:.2e} | {result.numeric_error:.2e} | {verdict} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxnet",
        description="Backpropagation by hand, checked against JAX; image classifiers with JAX, Flax and Optax.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "gradcheck",
        help="check every graph and layer's hand-written backward pass against jax.grad and numeric gradients",
        description="Prints a table of relative errors; exits with status 1 if any check fails.",
    )
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="default: %(default)s")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default: %(default)s)")
    p.set_defaults(func=_cmd_gradcheck)

    p = sub.add_parser(
        "report",
        help="run the assignment's parts and write REPORT.md (the main job)",
        description="Runs every part in order (or those named) and writes OUT/REPORT.md with figures and tables.",
    )
    p.add_argument("--out", default="results", help="output folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="small sizes: a few minutes in all")
    p.add_argument("parts", nargs="*", metavar="PART",
                   help="parts to run, of gradcheck, two_layer, cnn, pretrained (default: all, in that order)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "train",
        help="train the two-layer net, the linear classifier or the CNN; writes checkpoint, metrics.json and a plot",
        description="Trains a model with the one training loop. Unset flags keep the model's defaults "
        "(jaxnet/configs.py). Interrupted runs continue with --resume.",
    )
    p.add_argument("model", choices=["two-layer", "linear", "cnn"],
                   help="two-layer: fc-ReLU-fc with hand-written gradients; linear: softmax regression (one fc "
                   "layer), hand-written gradients; cnn: the assignment's Flax CNN")
    for field, (flag, kind, text) in _TRAIN_FLAGS.items():
        p.add_argument(flag, dest=field, type=kind, default=None, help=text)
    p.add_argument("--out", required=True, help="run folder for checkpoint.msgpack, metrics.json and plots")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last finished epoch, with its saved settings; flags "
                   "given now override them (--epochs counts all epochs, --lr is the schedule's base rate)")
    p.add_argument("--overwrite", action="store_true", help="start afresh even if --out holds a run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    group = p.add_argument_group(
        "several processes (jax.distributed)",
        "Run the same command in every process, each with its own --process-id; all three flags or none "
        "(or $JAX_COORDINATOR_ADDRESS, $JAX_NUM_PROCESSES, $JAX_PROCESS_ID). Every host needs the data; process 0 "
        "writes --out.")
    group.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0 and a free port on it")
    group.add_argument("--num-processes", type=int, metavar="N", help="number of processes")
    group.add_argument("--process-id", type=int, metavar="I", help="this process: 0..N-1")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="print the accuracy of a trained run (test split by default)",
                       description="Loads RUN (a run folder or its checkpoint.msgpack) and measures its accuracy.")
    p.add_argument("run", metavar="RUN_DIR_OR_CHECKPOINT", help="a folder written by `jaxnet train`, or its checkpoint")
    p.add_argument("--split", choices=["test", "val"], default="test", help="default: %(default)s")
    p.add_argument("--data-dir", default=None,
                   help="where the dataset's files are now, if not where the run found them")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="classify 28x28 grayscale images with a trained run",
                       description="Prints each image's predicted class. Images are expected as Fashion-MNIST's: "
                       "28x28 grayscale; other sizes and colour images are converted, with a warning. A file that "
                       "cannot be read is reported and the others are still classified (exit status 1).")
    p.add_argument("run", metavar="RUN_DIR", help="a folder written by `jaxnet train`, or its checkpoint")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files; Fashion-MNIST style is 28x28 grayscale, a light article on black")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("classify", help="classify photos with a pretrained ImageNet model (jaxnet.hub)",
                       description="Prints the top classes of each image with their probabilities. A file that "
                       "cannot be read is reported and the others are still classified (exit status 1).")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--model", default="efficientnet_lite0",
                   help="efficientnet_lite0 (offline) or squeezenet1_1 (downloaded once) (default: %(default)s)")
    p.add_argument("--top", type=int, default=5, help="classes shown per image (default: %(default)s)")
    p.add_argument("--figure", metavar="FILE", help="also draw each image beside a bar chart of its top 5")
    p.add_argument("--json", action="store_true",
                   help='print JSON: per image its "path" and "predictions" [{"index", "name", "probability"}], '
                   'or an "error"')
    p.set_defaults(func=_cmd_classify)

    p = sub.add_parser("bench", help="run the benchmarks (jaxnet vs jax.grad, NumPy, PyTorch) and write benchmarks.md",
                       description="Runs every benchmark (or those named: layers, two_layer, cnn, pretrained), each "
                       "in its own process, and writes OUT/benchmarks.md: the machine, each table, its ratios and "
                       "targets. A benchmark that fails is reported there and the others still run (exit status 1).")
    p.add_argument("--out", default="results", help="output folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="small sizes, a few seconds each (a smoke test)")
    p.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    p.set_defaults(func=_cmd_bench)

    for command in sub.choices.values():
        command.add_argument("--device", choices=sorted(_PLATFORMS), default=None,
                             help="where JAX computes (default: the best available: TPU, then GPU, then CPU)")
    return parser


# --device -> JAX_PLATFORMS, which only counts before JAX starts; child processes (jaxnet bench) inherit it.
_PLATFORMS = {"cpu": "cpu", "gpu": "cuda", "tpu": "tpu"}


def select_platform(kind: str | None) -> None:
    """Asks JAX for ``kind`` ("cpu", "gpu", "tpu") alone; call before anything starts JAX's backends."""
    if kind is not None and "jax" not in sys.modules:
        os.environ["JAX_PLATFORMS"] = _PLATFORMS[kind]


def check_device(kind: str | None) -> None:
    """Raises :class:`UserError` unless JAX can compute on ``kind`` (or on what JAX_PLATFORMS asks for)."""
    platforms = os.environ.get("JAX_PLATFORMS", "")
    if kind is None and not platforms:
        return  # the best device available: nothing to check
    import jax

    try:
        backend = jax.default_backend()
    except Exception as error:  # RuntimeError, or an AssertionError when no plugin for the platform is installed
        backend = None
        reason = (str(error).splitlines() or [""])[0].split(" (set JAX_PLATFORMS")[0] or "no JAX plugin for it"
    if kind is None:
        if backend is None:
            raise UserError(f"JAX_PLATFORMS={platforms}: JAX cannot start that platform ({reason[:160]}); "
                            "unset JAX_PLATFORMS to use the best device available")
        return
    if backend != kind:
        found = f"({reason[:160]})" if backend is None else f"(it runs on {backend})"
        hint = {"gpu": "install JAX's CUDA build (pip install 'jax[cuda12]') on a machine with an NVIDIA GPU",
                "tpu": "run on a Cloud TPU VM with pip install 'jax[tpu]'", "cpu": "check the jaxlib install"}[kind]
        raise UserError(f"--device {kind}: JAX found no {kind.upper()} {found}; {hint}, "
                        "or leave --device out to use the best device available")


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.formatwarning = _one_line_warning  # a CLI user needs the message, not our source line
    try:
        if getattr(args, "out", None) == "":
            raise UserError("--out must name a folder")
        select_platform(args.device)
        if args.command == "train":
            _start_processes(args)  # jax.distributed must start before any backend does
        check_device(args.device)
        return args.func(args)
    except UserError as error:
        print(f"jaxnet {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a folder that cannot be created, a file that cannot be written, a full disk
        where = f": {error.filename}" if error.filename else ""
        print(f"jaxnet {args.command}: error: {error.strerror or error}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jaxnet {args.command}: interrupted{_resume_hint(args)}", file=sys.stderr)
        return 130


def _plot_finished_epochs(run: Path, model: str) -> str:
    """Plots an interrupted run's metrics.json (its finished epochs); returns a note for the message."""
    import json

    from jaxnet import plots

    try:
        metrics = json.loads((run / "metrics.json").read_text())
        plots.plot_training(metrics, run / "training.png", title=f"{model}, interrupted")
    except (OSError, ValueError, KeyError):
        return ""  # the checkpoint is what matters; the plot comes with the finished run
    return " (with its plot, training.png)"


def _resume_hint(args: argparse.Namespace) -> str:
    if args.command != "train":
        return ""
    run = Path(args.out)
    if (run / "checkpoint.msgpack").exists():
        plotted = _plot_finished_epochs(run, getattr(args, "model", "run"))
        return (f"; the last finished epoch is saved in {run}{plotted}: the same command with --resume "
                "continues")
    if run.is_dir() and not any(run.iterdir()):
        run.rmdir()  # nothing was saved: leave no empty folder behind
    return "; no epoch had finished, nothing was saved"
