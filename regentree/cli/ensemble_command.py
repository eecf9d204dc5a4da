"""`regentree ensemble`: several trained flat models over the same classes, saved as one model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from regentree.cli.common import app, console, user_errors


@app.command()
def ensemble(
    members: Annotated[list[Path], typer.Argument(metavar="MODEL...", help="Two or more flat model folders.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Ensemble folder to write (the members are copied in).")],
    kl_threshold: Annotated[Optional[float], typer.Option(help="Reject as doubtful below this KL score.")] = 5.0,
    novelty_threshold: Annotated[Optional[float], typer.Option(
        help="Reject as unseen below this novelty p-value (the members' mean).")] = None,
    kl_pooling: Annotated[str, typer.Option(
        help="KL of the two best classes: 'members' (the members' mean, each on its own draws) or 'pooled' "
             "(of the pooled draws).")] = "members",
) -> None:
    """Pool trained flat models: per class, every member's re-generations form one distance distribution.

    The members must have the same classes and image shape and score alike (distance, decision, sigma^2,
    K, KL estimator); nothing is trained. Thresholds for a target: `regentree calibrate` on the ensemble.
    """
    from regentree.errors import ConfigError
    from regentree.estimators import RegenEnsemble
    from regentree.persistence.model_folder import check_model_destination, load_model

    with user_errors():
        if out.resolve() in [m.resolve() for m in members]:
            raise ConfigError(f"--out {out} is one of the members; write the ensemble to a new folder")
        check_model_destination(out)
        loaded = [load_model(m) for m in members]
        try:
            model = RegenEnsemble.from_fitted(loaded, kl_threshold=kl_threshold, novelty_threshold=novelty_threshold,
                                               kl_pooling=kl_pooling)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (members numbered from 0 in the order given: "
                              f"{', '.join(str(m) for m in members)})") from None
        model.save(out)
    console.print(f"saved ensemble of {len(members)} models ({len(model.vaes_)} VAEs, {len(model.classes_)} classes, "
                  f"K={model.n_regenerations} pooled draws per class) to {out}", highlight=False)
