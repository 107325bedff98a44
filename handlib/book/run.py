"""``python -m handlib book run``: execute chapters with papermill, report each as ok / partial / failed.

Chapters run with a fixed environment (threads, renderer, profile via env vars) so stored outputs and
nbval agree; ``book`` profile runs write back in place (the committed outputs), other profiles into an
output folder. Executed notebooks lose their volatile metadata so an unchanged chapter leaves git clean.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from handlib.book.chapters import chapter_environment
from handlib.fileio import atomic_write_text

# Notebook metadata that changes on every run without changing any output.
_VOLATILE_NOTEBOOK_KEYS = ("papermill",)
_VOLATILE_CELL_KEYS = ("papermill", "execution")


# A tqdm bar's text form: "desc:  40%|████      | 2/5 [00:01<00:01, 2.0it/s]".
_PROGRESS_BAR = re.compile(r"\d+%\|.*\| *[\d.]+[kM]?/[\d.?]+[kM]? \[")


def is_progress_bar(output: dict) -> bool:
    """Whether a stored output is a progress bar (a tqdm widget): transient, meaningless once stored."""
    data = output.get("data", {})
    text = "".join(data.get("text/plain", ""))
    return "application/vnd.jupyter.widget-view+json" in data and bool(_PROGRESS_BAR.search(text))


def merge_streams(outputs: list[dict]) -> list[dict]:
    """Adjacent stream outputs of the same name as one (the kernel splits a cell's prints by when they
    were flushed, which depends on how busy the machine was: one stored output keeps renders equal)."""
    merged: list[dict] = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (output.get("output_type") == "stream" and previous is not None
                and previous.get("output_type") == "stream" and previous.get("name") == output.get("name")):
            previous["text"] = "".join(previous["text"]) + "".join(output["text"])
        else:
            merged.append(output)
    return merged


def strip_volatile_metadata(notebook_path: Path) -> None:
    """Drop papermill timestamps/durations, injected-parameter cells (values come via env vars) and
    stored progress bars (a reader would see a frozen "0/50"), and merge a cell's adjacent stream
    outputs, so the built book shows no stale bar and re-running an unchanged chapter leaves git clean.
    Rewrites the file atomically."""
    nb = json.loads(notebook_path.read_text())
    for key in _VOLATILE_NOTEBOOK_KEYS:
        nb.get("metadata", {}).pop(key, None)
    cells = []
    for cell in nb.get("cells", []):
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        for key in _VOLATILE_CELL_KEYS:
            cell.get("metadata", {}).pop(key, None)
        if "outputs" in cell:
            cell["outputs"] = merge_streams([o for o in cell["outputs"] if not is_progress_bar(o)])
        cells.append(cell)
    nb["cells"] = cells
    _prune_widget_state(nb)
    atomic_write_text(notebook_path, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _prune_widget_state(nb: dict) -> None:
    """Keep only the saved widget models that a remaining output shows (directly or as a child):
    a dropped progress bar's models would otherwise stay in the page."""
    widgets = nb.get("metadata", {}).get("widgets", {})
    state = widgets.get("application/vnd.jupyter.widget-state+json", {}).get("state")
    if state is None:
        return
    shown = [o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
             for cell in nb["cells"] for o in cell.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    keep, todo = set(), list(shown)
    while todo:
        model = todo.pop()
        if model in keep or model not in state:
            continue
        keep.add(model)
        todo += re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(state[model]))
    if keep:
        widgets["application/vnd.jupyter.widget-state+json"]["state"] = {k: state[k] for k in state if k in keep}
    else:
        nb["metadata"].pop("widgets")


def _quiet_kernel_manager():
    """A kernel manager that starts the kernel over IPC (ipykernel warns about unencrypted TCP) and
    shuts an idle kernel down without the SIGINT that makes it log "KeyboardInterrupt caught in kernel"
    as an ERROR after a chapter that succeeded."""
    from jupyter_client.manager import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(transport="ipc", **kwargs)

        async def _async_interrupt_kernel(self) -> None:
            if not self.shutting_down:      # shutdown_kernel interrupts first; a finished chapter is idle
                await super()._async_interrupt_kernel()

    return QuietKernelManager


def run_chapters(paths: list[Path], profile: str, dataset: str, data_root: str | None,
                 out_dir: Path | None) -> int:
    """Execute chapters with papermill, each to completion or failure, then print one line per chapter
    (ok / partial and why / failed). Returns 0 when none failed (partial counts as run), else 1.

    A chapter is *partial* when it reported a missing resource through :mod:`handlib.notebook`
    (e.g. the published predictions): it ran, but skipped the cells that need it."""
    import papermill
    from tqdm.auto import tqdm

    from handlib.notebook import REPORT_ENV, read_report

    os.environ.update(chapter_environment(profile, dataset, data_root))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    kernel_manager = _quiet_kernel_manager()
    summary = []
    bar = tqdm(paths, desc=f"chapters ({profile})", unit="chapter")
    for path in bar:
        bar.set_postfix_str(path.stem)
        target = path if out_dir is None else out_dir / path.name
        # Execute into a temp file first: a failed run never leaves a half-written chapter.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{path.stem}.", suffix=".ipynb")
        os.close(fd)
        report = Path(tmp).with_suffix(".report")
        os.environ[REPORT_ENV] = str(report)
        started = time.monotonic()
        try:
            papermill.execute_notebook(
                str(path), tmp, kernel_name="python3", cwd=str(path.parent),
                progress_bar=True, request_save_on_cell_execute=False,
                kernel_manager_class=kernel_manager,
            )
        except papermill.PapermillExecutionError as err:
            Path(tmp).unlink(missing_ok=True)
            print(f"\nchapter {path.stem} failed in cell {err.cell_index} "
                  f"(execution count {err.exec_count}): {err.ename}: {err.evalue}", file=sys.stderr)
            summary.append((path.stem, "failed", f"cell {err.cell_index}: {err.ename}",
                            time.monotonic() - started))
            continue
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        finally:
            os.environ.pop(REPORT_ENV, None)
            reasons = read_report(str(report))
            report.unlink(missing_ok=True)
        strip_volatile_metadata(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; chapters are ordinary readable files
        os.replace(tmp, target)
        summary.append((path.stem, "partial" if reasons else "ok", "; ".join(dict.fromkeys(reasons)),
                        time.monotonic() - started))
    print(format_summary(summary))
    return 1 if any(status == "failed" for _, status, _, _ in summary) else 0


def format_summary(rows: list[tuple[str, str, str, float]]) -> str:
    """One line per chapter: name, ok / partial / failed, why (for partial and failed), wall time."""
    width = max((len(name) for name, *_ in rows), default=0)
    lines = ["", "chapters:"]
    for name, status, why, seconds in rows:
        minutes, secs = divmod(round(seconds), 60)
        lines.append(f"  {name:<{width}}  {status:<7}  {minutes:2d} min {secs:02d} s"
                     + (f"  ({why})" if why else ""))
    return "\n".join(lines)
