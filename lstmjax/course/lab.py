"""Opening the course as notebooks: JupyterLab with jupytext as the viewer of the tutorials.

The tutorials are jupytext MyST files (``tutorials/NN_name.md``). JupyterLab opens ``.md`` files
in its text editor unless jupytext's notebook viewer is made their default viewer, a setting
(``defaultViewers`` of ``@jupyterlab/docmanager-extension:plugin``) that a fresh install lacks.
``lstmjax-course lab`` writes that setting into a settings folder of its own (the user's own
JupyterLab settings are left alone) and starts JupyterLab on the tutorials with it, so that the
first click on a tutorial opens a notebook:

    lstmjax-course lab                      # JupyterLab on ./tutorials, .md files open as notebooks
    lstmjax-course lab --dir course/ -- --port 8890 --no-browser
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["DEFAULT_VIEWERS", "lab_command", "write_lab_settings"]

DEFAULT_VIEWERS = {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}
"""JupyterLab's default viewer per file type for the course: jupytext's notebook for ``.md``."""

_PLUGIN = pathlib.Path("@jupyterlab", "docmanager-extension", "plugin.jupyterlab-settings")


def write_lab_settings(settings_dir: str | pathlib.Path) -> pathlib.Path:
    """Write JupyterLab user settings that open Markdown files with jupytext's notebook viewer.

    Other settings already in the file are kept; only ``defaultViewers`` gains the two entries.

    Args:
      settings_dir: a JupyterLab user-settings folder (``JUPYTERLAB_SETTINGS_DIR``).

    Returns:
      the settings file written.

    Example:
      >>> import json, tempfile
      >>> path = write_lab_settings(tempfile.mkdtemp())
      >>> path.relative_to(path.parents[2]).as_posix()
      '@jupyterlab/docmanager-extension/plugin.jupyterlab-settings'
      >>> json.loads(path.read_text())["defaultViewers"]["markdown"]
      'Jupytext Notebook'
    """
    path = pathlib.Path(settings_dir) / _PLUGIN
    settings = {}
    if path.is_file():
        try:
            settings = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not JSON ({error}); remove it or fix it") from error
    settings["defaultViewers"] = {**settings.get("defaultViewers", {}), **DEFAULT_VIEWERS}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return path


def lab_command(directory: str | pathlib.Path, settings_dir: str | pathlib.Path,
                extra: Sequence[str] = ()) -> tuple[list[str], dict[str, str]]:
    """The command and environment that start JupyterLab on ``directory`` with the course settings.

    Example:
      >>> command, env = lab_command("tutorials", "/tmp/s", ["--no-browser"])
      >>> command[1:], env["JUPYTERLAB_SETTINGS_DIR"]
      (['-m', 'jupyterlab', '--ServerApp.root_dir=tutorials', '--no-browser'], '/tmp/s')
    """
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={directory}", *extra]
    return command, {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings_dir)}


def default_settings_dir() -> pathlib.Path:
    """The course's own JupyterLab settings folder (``~/.lstmjax/jupyterlab-settings``)."""
    return pathlib.Path.home() / ".lstmjax" / "jupyterlab-settings"


def run_lab(directory: str | pathlib.Path = "tutorials", settings_dir: str | pathlib.Path | None = None,
            extra: Sequence[str] = ()) -> int:
    """Start JupyterLab on the tutorials (blocks until it stops); returns its exit status."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no folder {directory} (run this in a clone of lstmjax, or pass --dir)")
    settings_dir = pathlib.Path(settings_dir) if settings_dir else default_settings_dir()
    write_lab_settings(settings_dir)
    command, env = lab_command(directory, settings_dir, extra)
    return subprocess.call(command, env=env)
