"""The installable package (pyproject.toml): metadata that can drift, and the console command."""
import contextlib
import importlib
import importlib.metadata
import io
import subprocess
import sys
import tomllib

import pytest

from bench import paths

PYPROJECT = paths.PROJECT_ROOT / "pyproject.toml"


@pytest.fixture(scope="module")
def project():
    return tomllib.loads(PYPROJECT.read_text())["project"]


def _requirements(name):
    """Requirement lines of a requirements file, without comments and includes."""
    text = (paths.PROJECT_ROOT / name).read_text()
    lines = (line.split("#")[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("-r")]


def test_dependencies_equal_the_requirements_files(project):
    assert project["dependencies"] == _requirements("requirements.txt")
    assert "torch==2.13.0" in project["dependencies"]
    assert project["optional-dependencies"]["dev"] == _requirements("requirements-dev.txt")


def test_the_build_settings_reach_the_code(project):
    """The include patterns select exactly the package folders on disk (every ``__init__.py``
    under bench/ and criteria/, no other top-level folder), the version attribute they name is a
    PEP 440 version, and this interpreter meets ``requires-python``."""
    from fnmatch import fnmatch

    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    build = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]
    include = build["packages"]["find"]["include"]
    root = paths.PROJECT_ROOT
    tops = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
            and d.name not in {"data", "results", "tests"}]
    on_disk = {".".join(init.parent.relative_to(root).parts)
               for top in tops for init in top.rglob("__init__.py")}
    assert {"bench", "bench.report", "criteria"} <= on_disk
    assert {name for name in on_disk if any(fnmatch(name, pattern) for pattern in include)} == on_disk
    module, attribute = build["dynamic"]["version"]["attr"].rsplit(".", 1)
    version = getattr(importlib.import_module(module), attribute)
    assert str(Version(version)) == version
    running = ".".join(map(str, sys.version_info[:3]))
    assert SpecifierSet(project["requires-python"]).contains(running, prereleases=True)


def _console(project, *argv):
    """Run the console command as its generated script does: ``sys.exit(main())`` with argv set."""
    name, = project["scripts"]
    main = importlib.metadata.EntryPoint(name, project["scripts"][name], "console_scripts").load()
    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = [name, *argv]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            with pytest.raises(SystemExit) as ended:
                sys.exit(main())
    finally:
        sys.argv = saved
    return ended.value.code or 0, out.getvalue(), err.getvalue()


def _module(*argv):
    done = subprocess.run([sys.executable, "-m", "bench", *argv], capture_output=True, text=True,
                          cwd=paths.PROJECT_ROOT, timeout=300)
    return done.returncode, done.stdout, done.stderr


def test_the_console_command_is_python_m_bench(project):
    from bench import cli

    assert project["scripts"] == {"nb201-select": "bench.cli:main"}
    name, = project["scripts"]
    assert importlib.metadata.EntryPoint(name, "bench.cli:main", "console_scripts").load() is cli.main
    code, out, err = _console(project, "--help")
    assert (code, out, err) == _module("--help")
    assert code == 0 and "benchmark" in out and "search" in out


def test_the_console_command_reports_bad_input_like_python_m_bench(project):
    code, out, err = _console(project, "benchmark", "show", "|nor_conv_3x3~0|")
    assert code == 2 and "node group" in err
    assert (code, out, err) == _module("benchmark", "show", "|nor_conv_3x3~0|")
