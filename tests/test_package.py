"""The installable package (pyproject.toml): metadata that can drift, and the console command."""
import contextlib
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
    lines = (line.split("#")[0].strip() for line in (paths.PROJECT_ROOT / name).read_text().splitlines())
    return [line for line in lines if line and not line.startswith("-r")]


def test_dependencies_equal_the_requirements_files(project):
    assert project["dependencies"] == _requirements("requirements.txt")
    assert "torch==2.13.0" in project["dependencies"]
    assert project["optional-dependencies"]["dev"] == _requirements("requirements-dev.txt")


def test_metadata(project):
    assert project["name"] == "nb201-select"
    assert project["dynamic"] == ["version"]
    assert project["requires-python"] == ">=3.11"
    assert (paths.PROJECT_ROOT / project["readme"]).is_file()
    build = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]
    assert build["dynamic"]["version"] == {"attr": "bench.__version__"}
    assert set(build["packages"]["find"]["include"]) == {"bench", "bench.*", "criteria", "criteria.*"}


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
