"""`regentree info`: what a model folder holds, without running anything in it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from regentree.cli.common import (
    AsJson, app, check_png_name, console, fmt, names_in_braces, print_json, user_errors,
)
from regentree.cli.rejection_commands import rule_summary
from regentree.errors import ConfigError


def vae_shape(vae: dict) -> str:
    """'mlp 784-500-500-15, bernoulli decoder' or 'conv: channels 32, 64, dense 256, latent 20, bernoulli decoder'
    from a summary's VAE entry."""
    decoder = f"{vae['likelihood']} decoder"
    if vae["architecture"] == "conv":
        channels_1, channels_2, dense = vae["hidden_dims"]
        return f"conv: channels {channels_1}, {channels_2}, dense {dense}, latent {vae['latent_dim']}, {decoder}"
    shape = f"{vae['input_dim']}-{'-'.join(map(str, vae['hidden_dims']))}-{vae['latent_dim']}"
    return f"{vae['architecture']} {shape}, {decoder}"


ROUTING_LINES = {
    "soft": lambda s: f"soft routing (beam width {s['beam_width']})",
    "gated": lambda s: (f"gated routing (beam width {s['beam_width']} where a step's KL < its depth's gate: "
                        f"{', '.join(f'{gate:.3g}' for gate in s['kl_gate'])})"),
}
"""How `regentree info` words a tree's routing, from its `summary()`; others: "<name> routing (flat below N)"."""


def _ensemble_table(path: Path, summary: dict) -> Table:
    """An ensemble's rows: classes, pooled scoring, and one row per member (its VAE shape and training)."""
    scoring = summary["scoring"]
    table = Table(title=f"regentree model: {path}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("kind", f"ensemble of {summary['n_members']} flat models ({summary['n_vaes']} VAEs, all met by every probe)")
    table.add_row("classes", f"{summary['n_classes']}: {names_in_braces(summary['classes'])}")
    table.add_row("images", "x".join(str(s) for s in summary["image_shape"]))
    table.add_row("scoring", f"K={scoring['n_regenerations_pooled']} pooled draws per class, "
                             f"sigma^2={fmt(scoring['noise_variance'])}, distance {scoring['distance']}, "
                             f"decision {scoring['decision']}, KL estimator {scoring['kl_estimator']} "
                             f"({scoring['kl_pooling']} KL)")
    for i, member in enumerate(summary["members"]):
        training = member["training"]
        table.add_row(f"member {i}", f"{vae_shape(member['vae'])}, K={member['scoring']['n_regenerations']}, "
                                     f"epochs run {training['epochs_run_min']}–{training['epochs_run_max']}")
    return table


def _precision(scoring: dict) -> str:
    """The scoring arithmetic, with what "auto" means on this machine."""
    if scoring["precision"] == "auto":
        return f"precision auto ({scoring['precision_here']} here)"
    return f"precision {scoring['precision']}"


def _summary_table(path: Path, summary: dict) -> Table:
    """The summary's rows a person reads first; `--json` has all of it."""
    if summary["kind"] == "ensemble":
        return _ensemble_table(path, summary)
    vae, scoring, training = summary["vae"], summary["scoring"], summary["training"]
    references = summary["novelty_references"]
    table = Table(title=f"regentree model: {path}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("kind", f"{summary['kind']} ({summary['n_vaes']} VAEs, at most {summary['max_vae_evaluations']} per probe)"),
        ("classes", f"{summary['n_classes']}: {names_in_braces(summary['classes'])}"),
        ("images", "x".join(str(s) for s in summary["image_shape"])),
        ("VAE", f"{vae_shape(vae)} ({summary['n_parameters']:,} parameters in all)"),
        ("scoring", f"K={scoring['n_regenerations']}{' (adaptive)' if scoring['adaptive'] else ''}, "
                    f"sigma^2={fmt(scoring['noise_variance'])}, distance {scoring['distance']}, "
                    f"decision {scoring['decision']}, KL estimator {scoring['kl_estimator']}, "
                    f"{_precision(scoring)}"),
        ("novelty references", f"{references['per_vae_min']}–{references['per_vae_max']} per VAE"
                               + ("" if references["applicable"] else " (recorded with other scoring parameters)")),
        ("training", f"epochs run {training['epochs_run_min']}–{training['epochs_run_max']} of "
                     f"{training['epochs_cap']}, {training['precision']}, "
                     f"{fmt(training['seconds_sum'], 1)} s summed over the VAEs"
                     + (f", from a base VAE trained {training['base_vae_epochs_run']} epochs"
                        if training["base_vae_epochs_run"] else "")),
    ]
    if summary["kind"] == "tree":
        hard = lambda s: f"{s['routing']} routing (flat below {s['flat_below']} classes)"  # noqa: E731
        routing = ROUTING_LINES.get(summary["routing"], hard)(summary)
        rows.append(("tree", f"depth {summary['depth']}, {summary['n_nodes']} nodes, {routing}"))
    for name, value in rows:
        table.add_row(name, value)
    return table


def _training_curves_png(model, model_path: Path) -> bytes:
    """PNG of every VAE's loss curves, named by the classes it models; an error if the folder kept none."""
    from regentree.evaluation.plots import figure_png, training_curves_figure

    curves = {key: record for key, record in model.training_info_.items() if record.get("val_loss")}
    if not curves:
        raise ConfigError(f"{model_path}: the model folder records no training curves (saved before regentree "
                          f"kept them); train it again to plot them")
    classes = {key: [str(model.classes_[c]) for c in model.vae_classes_[key]] for key in curves}
    names = {key: names[0] if len(names) == 1 else names_in_braces(names) for key, names in classes.items()}
    return figure_png(training_curves_figure(curves, names, title=f"training curves of {model_path.name}"))


@app.command()
def info(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="Model folder to describe.")],
    plot: Annotated[Optional[Path], typer.Option(
        help="Also draw every VAE's training and validation loss per epoch into this PNG file.")] = None,
    as_json: AsJson = False,
) -> None:
    """Describe a saved model: classes, VAEs, scoring, the rejection rule in force, training (and its tree)."""
    from regentree.persistence.model_folder import load_model, write_file_atomically

    with user_errors():
        check_png_name(plot)
        model = load_model(model_path)
        summary = model.summary()
        if plot is not None:
            write_file_atomically(plot, _training_curves_png(model, model_path))
    if as_json:
        print_json(summary)
        return
    console.print(_summary_table(model_path, summary))
    console.print(rule_summary(model), highlight=False)
    if summary["kind"] == "tree":
        console.print(summary["tree"], highlight=False)
    if plot is not None:
        console.print(f"wrote {plot}", highlight=False)
