"""Commands that change the classes of a saved model: `add-class`, `remove-class`.

Both load the model, change it in memory and write it back with `save_model`, which builds the new
folder beside the old one and renames it into place: a failure or a kill before the rename leaves the
previous model as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from regentree.cli.progress_display import ProgressMode
from regentree.cli.common import AsJson, Quiet, Seed, app, check_positive, console, err_console, print_json, show_progress, user_errors
from regentree.errors import InvalidInputError

ModelPath = Annotated[Path, typer.Argument(metavar="MODEL", help="Model folder to update in place.")]
Label = Annotated[str, typer.Option("--label", help="Name of the class in the model.")]


def model_label(model, text: str):
    """The `--label` text as a value of the model's class kind (integer classes need an integer)."""
    if np.issubdtype(model.classes_.dtype, np.integer):
        try:
            return int(text)
        except ValueError:
            raise InvalidInputError(f"--label {text!r}: the model's classes are integers; pass an integer") from None
    return text


def class_samples(data: list[Path], from_class: Optional[str], split: str, image_shape, seed: int) -> np.ndarray:
    """Images of the one class to add: a class of a labelled data set, or all images of unlabelled files."""
    from regentree.data import IMAGE_SUFFIXES, load_dataset, load_probes

    if from_class is not None:
        if len(data) != 1:
            raise InvalidInputError(f"--from-class takes one labelled data set, got {len(data)} paths")
        source = str(data[0]) if str(data[0]) == "digits" else data[0]
        dataset = load_dataset(source, split=split, seed=seed).select_classes([from_class])
        if dataset.image_shape != tuple(image_shape):
            raise InvalidInputError(
                f"{data[0]}: images are {dataset.image_shape[0]}x{dataset.image_shape[1]}, "
                f"the model's are {image_shape[0]}x{image_shape[1]}"
            )
        return dataset.X
    files = []
    for path in data:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InvalidInputError(
                    f"{path}: no PNG/JPEG images in this folder (for a labelled data set pass --from-class NAME)"
                )
            files.extend(found)
        else:
            files.append(path)
    return load_probes(files, image_shape)[0]


def _report(update, model_path: Path, as_json: bool) -> None:
    if as_json:
        print_json({**update.to_dict(), "model": str(model_path)})
        return
    verb = "added" if update.operation == "add" else "removed"
    console.print(f"{verb} class {update.label!r} in {update.seconds:.1f} s; saved {model_path}", highlight=False)
    console.print(f"  trained VAEs: {', '.join(update.trained) or '(none)'}", highlight=False)
    console.print(f"  dropped VAEs: {', '.join(update.dropped) or '(none)'}", highlight=False)
    if update.placement:
        console.print("  tree: " + ", ".join(f"{k}={v}" for k, v in update.placement.items()), highlight=False)


@app.command("add-class")
def add_class(
    model_path: ModelPath,
    data: Annotated[
        list[Path],
        typer.Argument(help="Images of the new class (PNG/JPEG/.npy/.npz/IDX files or a folder of images), or, "
                            "with --from-class, one labelled data set ('digits', IDX folder, .npz, class folders)."),
    ],
    label: Label,
    from_class: Annotated[
        Optional[str], typer.Option(help="Take the samples of this class of the labelled data set DATA.")
    ] = None,
    split: Annotated[str, typer.Option(help="Split of DATA with --from-class.")] = "train",
    limit: Annotated[Optional[int], typer.Option(help="Use at most this many samples.")] = None,
    seed: Seed = 0,
    as_json: AsJson = False,
    quiet: Quiet = False,
    progress_mode: ProgressMode = "auto",
) -> None:
    """Teach a saved model a new class: train only the VAEs it needs and leave the rest untouched."""
    from regentree.estimators.incremental import check_new_class
    from regentree.persistence.model_folder import load_model, save_model

    with user_errors():
        check_positive("--limit", limit)
        model = load_model(model_path)
        name = model_label(model, label)
        X = class_samples(data, from_class, split, model.image_shape_, seed)
        if limit:
            X = X[np.random.default_rng(seed).permutation(len(X))[:limit]]
        check_new_class(model, X, name)  # bad input fails here, before the announcement below
        err_console.print(f"training class {name!r} on {len(X)} images ({model.kind} model)", highlight=False)
        with show_progress(quiet or as_json, progress_mode) as progress:
            update = model.add_class(X, name, progress=progress)
        save_model(model, model_path)
    _report(update, model_path, as_json)


@app.command("remove-class")
def remove_class(model_path: ModelPath, label: Label, as_json: AsJson = False, quiet: Quiet = False,
                 progress_mode: ProgressMode = "auto") -> None:
    """Make a saved model forget a class: drop its VAE (tree: re-train the group VAEs above it)."""
    from regentree.persistence.model_folder import load_model, save_model

    with user_errors():
        model = load_model(model_path)
        name = model_label(model, label)
        with show_progress(quiet or as_json, progress_mode) as progress:
            update = model.remove_class(name, progress=progress)
        save_model(model, model_path)
    _report(update, model_path, as_json)
