"""Type-check Firebreak with mypy under the module names it is installed with.

The repository keeps bot/ agents/ store/ ... at the top and installs them as firebreak.bot,
firebreak.agents, ... ([tool.setuptools.package-dir]). mypy can neither follow setuptools'
editable-install import hook nor be told such a mapping, and checking the directories as they
are would name the modules `bot.x` while the code imports `firebreak.bot.x`. So this hands
mypy the same files with their installed names; everything else (options, plugins, output,
exit status) is mypy's own, read from [tool.mypy]. Extra arguments go to mypy.
"""

import os
import sys
import time
import tomllib
from pathlib import Path

from mypy import util
from mypy.fscache import FileSystemCache
from mypy.main import process_options, run_build
from mypy.modulefinder import BuildSource

ROOT = Path(__file__).resolve().parent.parent


def package_dirs() -> dict[Path, str]:
    """Each source directory and the package name it installs as."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {ROOT / folder: package for package, folder in setuptools["package-dir"].items()}


def installed_name(path: Path, dirs: dict[Path, str]) -> str:
    """`bot/messages/cards.py` -> `firebreak.bot.messages.cards` (an __init__ names its package)."""
    for folder, package in dirs.items():
        if path.is_relative_to(folder):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(f"{path} is not under any [tool.setuptools.package-dir] folder")


def main(args: list[str]) -> int:
    """Run mypy over every package folder; 0 when there is no error, as mypy's own exit code."""
    started = time.time()
    dirs = package_dirs()
    fscache = FileSystemCache()
    folders = [str(folder.relative_to(ROOT)) for folder in dirs]
    found, options = process_options([*args, *folders], fscache=fscache)
    sources = [
        BuildSource(s.path, installed_name(Path(s.path).resolve(), dirs), base_dir=str(ROOT))
        for s in found
        if s.path
    ]
    _, messages, blockers = run_build(sources, options, fscache, started, sys.stdout, sys.stderr)
    formatter = util.FancyFormatter(sys.stdout, sys.stderr, options.hide_error_codes)
    n_errors, _, n_files = util.count_stats(messages)
    if n_errors:
        print(formatter.format_error(n_errors, n_files, len(sources), blockers=blockers))
        return 2 if blockers else 1
    print(formatter.format_success(len(sources), options.color_output))
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main(sys.argv[1:]))
