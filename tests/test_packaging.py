"""The sdist and the wheel as a port builds them, and the port's `make test`,
in a fresh venv (its BUILD, RUN and TEST dependencies only).

The steps are the ports framework's (Mk/Uses/python.mk, USE_PYTHON=pep517
pytest): build the wheel from the extracted sdist without isolation, stage it
with `installer --destdir STAGEDIR --prefix PREFIX`, then in the sdist's
directory run `python -m pytest -k '' -rs -v -o addopts= ${TEST_ARGS}` with
the port's TEST_ENV (PYTHONPATH at the staged site-packages).  TEST_ARGS is
read from the port's Makefile, so the two cannot drift apart."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tarfile

import pytest

from .conftest import REPO

pytestmark = pytest.mark.packaging

PORT = REPO / "contrib" / "port" / "sysutils" / "py-jailhooks"
PREFIX = "/usr/local"
# BUILD_DEPENDS (+ the pep517 feature's build and installer), RUN_DEPENDS, TEST_DEPENDS
DEPENDS = ["setuptools>=77", "wheel", "build", "installer", "click>=8.0", "pluggy>=1.2", "pytest>=7", "hypothesis"]


def run(argv, **kw):
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kw)
    assert res.returncode == 0, f"{argv}: {res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def makefile_value(name: str) -> str:
    text = (PORT / "Makefile").read_text()
    match = re.search(rf"^{name}=\t+(.*)$", text, re.M)
    assert match, f"{name} is not set in the port's Makefile"
    return match.group(1)


@pytest.fixture(scope="module")
def port_build(tmp_path_factory):
    top = tmp_path_factory.mktemp("port")
    venv = top / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    py = str(venv / "bin" / "python")
    tomli = ["tomli>=1.1"] if sys.version_info < (3, 11) else []
    install = subprocess.run([py, "-m", "pip", "install", "-q", *DEPENDS, *tomli], capture_output=True, text=True,
                             timeout=600)
    if install.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot install the port's dependencies: {install.stderr[-2000:]}")
        pytest.skip(f"cannot install the port's dependencies (offline?): {install.stderr.strip()[-300:]}")
    run([py, "-m", "build", "--no-isolation", "--sdist", "--outdir", str(top / "dist"), str(REPO)])
    (sdist,) = (top / "dist").glob("jailhooks-*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(top / "work", filter="data") if sys.version_info >= (3, 12) else tar.extractall(top / "work")
    (wrksrc,) = (top / "work").iterdir()
    run([py, "-m", "build", "--no-isolation", "--wheel", "--outdir", "dist", "."], cwd=wrksrc)
    (wheel,) = (wrksrc / "dist").glob("jailhooks-*.whl")
    stage = top / "stage"
    run([py, "-m", "installer", "--destdir", str(stage), "--prefix", PREFIX, str(wheel)])
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return {"py": py, "wrksrc": wrksrc, "stage": stage / PREFIX.lstrip("/"),
            "sitelib": stage / PREFIX.lstrip("/") / "lib" / version / "site-packages"}


def test_the_wheel_installs_the_manuals_and_examples_under_its_prefix(port_build):
    prefix = port_build["stage"]
    for path in ("bin/jailhooks", "share/man/man8/jailhooks.8", "share/man/man5/jailhooks.toml.5",
                 "share/examples/jailhooks/jailhooks.toml", "share/examples/jailhooks/pf.conf",
                 "share/examples/jailhooks/jail.conf", "share/examples/jailhooks/jailhooks.in"):
        assert (prefix / path).is_file(), path
    assert (prefix / "share/man/man8/jailhooks.8").read_bytes() == (REPO / "contrib/jailhooks.8").read_bytes()


def test_the_ports_make_test_passes_on_the_extracted_sdist(port_build):
    args = shlex.split(makefile_value("TEST_ARGS"))
    assert "packaging" in " ".join(args)  # or this test would run itself
    env = {"PATH": "/usr/bin:/bin", "HOME": str(port_build["wrksrc"]), "LC_ALL": "C.UTF-8",
           "PYTHONPATH": str(port_build["sitelib"])}
    assert makefile_value("TEST_ENV") == "${MAKE_ENV} PYTHONPATH=${STAGEDIR}${PYTHONPREFIX_SITELIBDIR}"
    res = subprocess.run([port_build["py"], "-m", "pytest", "-k", "", "-rs", "-v", "-o", "addopts=", *args],
                         cwd=port_build["wrksrc"], env=env, capture_output=True, text=True, timeout=1200)
    summary = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr[-2000:]
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed > 300 and "failed" not in summary and "error" not in summary, summary
