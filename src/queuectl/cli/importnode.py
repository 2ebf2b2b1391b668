"""`queuectl import-node`: take over a database the Node version wrote (SPEC §7.8)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from .. import render
from .context import JSON_OPT, command_context
from .progress import Progress

if TYPE_CHECKING:
    from ..nodeimport import ImportReport, Skips


def import_node(
    ctx: typer.Context,
    source: str = typer.Option(
        ...,
        "--from",
        metavar="URL",
        help="The Node version's MongoDB URL, its database in the path.",
        show_default=False,
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Read and report what would be imported; change nothing."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Copy the jobs and config of a Node-version database into this store.

    Jobs keep their ids, states and attempts; running ones come back pending. A job whose id
    this store holds, or a config key it has set, is skipped, so running it again imports
    nothing new. Prints what was imported and what was skipped, and why.

    \b
    Example: queuectl import-node --from mongodb://localhost:27017/jobqueue --dry-run
    """
    from ..nodeimport import import_node_url

    app = command_context(ctx)
    with Progress() as line:

        def shown(read: int, total: int | None) -> None:
            """`Reading the Node database: 1500/20000 job(s)` on the progress line."""
            line.show(f"Reading the Node database: {read}{f'/{total}' if total else ''} job(s)")

        report = import_node_url(
            source, app.jobs, app.configs, dry_run=dry_run, progress=shown if line.on else None
        )
    if as_json:
        render.emit_json(_as_json(report))
    else:
        typer.echo("\n".join(summary_lines(report)))


def summary_lines(report: ImportReport) -> list[str]:
    """One summary line, then a line per noteworthy count and per skip reason."""
    verb = "Would import" if report.dry_run else "Imported"
    states = ", ".join(f"{n} {state}" for state, n in sorted(report.imported.items()))
    jobs = f"{report.jobs_imported} job(s)" + (f" ({states})" if states else "")
    skipped = f"skipped {report.skipped_jobs.total} job(s)"
    if report.skipped_config.total:
        skipped += f" and {report.skipped_config.total} config value(s)"
    dry = " (dry run: nothing was changed)" if report.dry_run else ""
    lines = [
        f"{verb} {jobs} and {len(report.config)} config value(s) from {report.source}; "
        f"{skipped}{dry}"
    ]
    if report.requeued:
        back = "would come" if report.dry_run else "come"
        lines.append(f"  {report.requeued} running job(s) {back} back as pending, attempts counted")
    if report.config:
        values = ", ".join(f"{key}={value}" for key, value in shown_config(report.config).items())
        lines.append(f"  config: {values}")
    lines += _reasons("job(s)", report.skipped_jobs)
    lines += _reasons("config value(s)", report.skipped_config)
    return lines


def shown_config(values: dict[str, Any]) -> dict[str, Any]:
    """The imported config values as they may be printed: a notify_url by its host only, as
    a worker logs it, since its path or query may hold a token (`config get notify_url`
    shows it whole)."""
    url = values.get("notify_url")
    if not url:
        return values
    from ..notify import url_host

    return {**values, "notify_url": f"{url_host(url)} (path and query hidden)"}


def _reasons(what: str, skips: Skips) -> list[str]:
    lines = []
    for reason, count in skips.counts.most_common():
        named = skips.examples.get(reason, [])
        more = ", …" if count > len(named) else ""
        lines.append(f"  skipped {count} {what}: {reason} ({', '.join(named)}{more})")
    return lines


def _as_json(report: ImportReport) -> dict[str, Any]:
    def skips(found: Skips) -> list[dict[str, Any]]:
        """Each reason with its count and first few names, most common first."""
        return [
            {"reason": reason, "count": count, "examples": found.examples.get(reason, [])}
            for reason, count in found.counts.most_common()
        ]

    return {
        "source": report.source,
        "dry_run": report.dry_run,
        "jobs": {
            "imported": report.jobs_imported,
            "by_state": dict(sorted(report.imported.items())),
            "requeued": report.requeued,
            "skipped": skips(report.skipped_jobs),
        },
        "config": {
            "imported": shown_config(report.config),
            "skipped": skips(report.skipped_config),
        },
    }


def register(app: typer.Typer) -> None:
    """Add `import-node` to the root app."""
    app.command("import-node")(import_node)
