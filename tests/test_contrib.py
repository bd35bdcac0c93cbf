"""contrib/: the rc.d script, the man page and the port skeleton stay right."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from .conftest import REPO

CONTRIB = REPO / "contrib"
PORT = CONTRIB / "port" / "sysutils" / "py-jailhooks"


def test_rc_script_is_valid_sh_and_ordered_after_pf_before_jails():
    script = CONTRIB / "rc.d" / "jailhooks.in"
    subprocess.run(["sh", "-n", str(script)], check=True)
    text = script.read_text()
    assert "# PROVIDE: jailhooks\n" in text
    assert re.search(r"# REQUIRE: .*\bpf\b", text)
    assert re.search(r"# BEFORE: .*\bjail\b.*\bLOGIN\b", text)  # before LOGIN, or iocage/ezjail may go first
    assert "# KEYWORD: nojail" in text
    assert text.index("load_rc_config") < text.index(': ${jailhooks_enable:="NO"}')
    assert "%%PREFIX%%/bin/jailhooks" in text and "/usr/local" not in text
    assert (PORT / "files" / "jailhooks.in").read_text() == text  # the port ships the same script


@pytest.mark.skipif(shutil.which("mandoc") is None, reason="mandoc is not installed (Debian package mandoc)")
@pytest.mark.parametrize("page", ["jailhooks.8", "jailhooks.toml.5"])
def test_man_page_is_clean_under_mandoc_lint(page):
    res = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", str(CONTRIB / page)],
                         capture_output=True, text=True)
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def _config_manual() -> dict[str, set[str]]:
    """jailhooks.toml(5): the keys (.It Cm KEY) under each .Ss heading."""
    sections: dict[str, set[str]] = {}
    current = ""
    for line in (CONTRIB / "jailhooks.toml.5").read_text().splitlines():
        if line.startswith(".Ss "):
            current = line[4:].strip().removesuffix("\\&")  # "\&" keeps mandoc from reading "]" as a delimiter
            sections[current] = set()
        elif line.startswith(".It Cm ") and current:
            sections[current].add(line.split()[2])
    return sections


def test_every_config_key_has_a_line_in_jailhooks_toml_5(tmp_path):
    """Every key the config accepts (the core's and each built-in plugin's
    sections, global and per jail) is documented in jailhooks.toml(5)."""
    from jailhooks import config
    from jailhooks.app import load_app

    conf = tmp_path / "c.toml"
    conf.write_text(f'[host]\nmode = "simulated"\nstate_dir = "{tmp_path}"\n')
    app = load_app(str(conf), quiet=True)
    conf.write_text(conf.read_text() + '[firewall]\nbackend = "ipfw"\n')
    ipfw = load_app(str(conf), quiet=True)  # each firewall plugin's own section
    manual = _config_manual()
    wanted = {"The top level": {"plugins", "modules", "autoload", "disabled"}, "[host]": set(config.HOST_FIELDS),
              "[registry]": set(config.REGISTRY_FIELDS), "[jail.NAME]": set(config.JAIL_FIELDS),
              "[firewall]": {"backend"}}
    for _, sections in app.plugins.collect("jailhooks_config_sections") + ipfw.plugins.collect(
            "jailhooks_config_sections"):
        for section in sections:
            wanted.setdefault(f"[{section.name}]", set()).update(section.fields)
            jail_only = set(section.jail_fields) - set(section.fields)
            if jail_only:
                wanted.setdefault(f"[jail.NAME.{section.name}]", set()).update(jail_only)
    for heading, keys in wanted.items():
        missing = keys - manual.get(heading, set())
        assert not missing, f"jailhooks.toml(5) lacks {sorted(missing)} under {heading}"


def test_man_page_lists_every_command_and_exit_code():
    page = (CONTRIB / "jailhooks.8").read_text()
    from jailhooks.cli import cli
    from jailhooks.errors import ExitCode

    for name in cli.commands:
        assert f".Cm {name}" in page, name
    for code in ExitCode:
        if code:
            assert f".It {int(code)}\n" in page, code


def _synopsis() -> list[str]:
    """The SYNOPSIS of jailhooks(8), one entry (from one .Nm to the next) each."""
    page = (CONTRIB / "jailhooks.8").read_text()
    body = page.split(".Sh SYNOPSIS\n", 1)[1].split("\n.Sh ", 1)[0]
    return [" ".join(entry.split()) for entry in body.split(".Nm\n")[1:]]


def _commands():
    import click

    from jailhooks.cli import cli

    def walk(cmd, path):
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                yield from walk(sub, path + [name])
        else:
            yield path, [opt for p in cmd.params if isinstance(p, click.Option) and not p.hidden for opt in p.opts]

    return cli, list(walk(cli, []))


def test_the_synopsis_lists_every_command_and_option():
    """Each click command has a SYNOPSIS entry whose .Cm words are its name
    and which names each of its options; the global options are in the
    first entry, and --version has one of its own."""
    cli, commands = _commands()
    entries = _synopsis()
    for path, options in commands:
        words = " ".join(f".Cm {w}" for w in path)
        mine = [e for e in entries if f"{words} " in e + " " or " ".join(path) in e.replace(".Cm ", "")]
        assert mine, f"no SYNOPSIS entry for {' '.join(path)}"
        entry = " ".join(mine)
        for opt in options:
            if opt in ("-h", "--help"):
                continue
            assert f"Fl {opt.lstrip('-') if not opt.startswith('--') else opt[1:]}" in entry, (path, opt)
    for opt in (o for p in cli.params for o in p.opts if o not in ("--version", "--help", "--verbose", "--quiet")):
        assert f"Fl {opt[1:]}" in entries[0], opt
    assert any(e.startswith(".Fl -version") for e in entries)


def test_port_installs_what_its_plist_lists():
    makefile = (PORT / "Makefile").read_text()
    plist = (PORT / "pkg-plist").read_text().splitlines()
    assert "PORTNAME=\tjailhooks" in makefile  # the normalised distribution name (pep517 wheel glob)
    from jailhooks import __version__

    assert f"DISTVERSION=\t{__version__}" in makefile
    assert "libexec" not in makefile and not any("libexec" in line for line in plist)  # nothing calls a shim
    # the config may hold a PostgreSQL password: pkg copies the sample with its mode (0600)
    assert plist == ["@sample(,,0600) etc/jailhooks.toml.sample"]
    assert "${WRKSRC}/contrib/jailhooks.toml.sample" in makefile and (CONTRIB / "jailhooks.toml.sample").exists()
    assert "USE_RC_SUBR=\tjailhooks" in makefile
    assert "USE_PYTHON=\tautoplist pep517 pytest" in makefile and "${PY_SETUPTOOLS}" in makefile
    assert "PYTHON_SITELIBDIR" not in makefile.replace("PYTHONPREFIX_SITELIBDIR", "")
    assert "LICENSE_FILE=\t${WRKSRC}/LICENSE" in makefile and (REPO / "LICENSE").exists()
    # the wheel carries the manuals and the examples (autoplist lists them), whatever the options say
    data = tomllib_load(REPO / "pyproject.toml")["tool"]["setuptools"]["data-files"]
    assert data["share/man/man8"] == ["contrib/jailhooks.8"] and data["share/man/man5"] == ["contrib/jailhooks.toml.5"]
    for example in ("contrib/jailhooks.toml", "hooks/jail.conf", "contrib/pf.conf", "contrib/rc.d/jailhooks.in"):
        assert example in data["share/examples/jailhooks"] and (REPO / example).exists()
    assert "PGSQL_RUN_DEPENDS=\t${PYTHON_PKGNAMEPREFIX}psycopg>=3.1:databases/py-psycopg" in makefile
    message = (PORT / "files" / "pkg-message.in").read_text()
    assert 'anchor "jailhooks/*"' in message and "sysrc jailhooks_enable=YES" in message
    assert "%%EXAMPLESDIR%%/pf.conf" in message
    # the completion files, one option each, made with the staged program
    assert "OPTIONS_DEFAULT=\tBASH FISH ZSH" in makefile
    for opt, shell in (("BASH", "bash"), ("FISH", "fish"), ("ZSH", "zsh")):
        assert f"post-install-{opt}-on:" in makefile and f"{opt}_PLIST_FILES=" in makefile
        out = subprocess.run([sys.executable, "-m", "jailhooks"], capture_output=True, text=True, timeout=60,
                             env={"PYTHONPATH": str(REPO), "_JAILHOOKS_COMPLETE": f"{shell}_source"}).stdout
        assert "_JAILHOOKS_COMPLETE=" in out and f"_JAILHOOKS_COMPLETE={shell}_source" in makefile
    assert "make makesum" in (CONTRIB / "port" / "README.md").read_text()  # how distinfo is made


def tomllib_load(path):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def test_the_sample_pkg_installs_is_inert(tmp_path):
    """pkg copies etc/jailhooks.toml.sample into place: it must define no
    jail and no rule, only comments."""
    text = (CONTRIB / "jailhooks.toml.sample").read_text()
    assert all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())
    uncommented = "\n".join(line[2:] if line.startswith("# ") else line for line in text.splitlines()[4:])
    assert "[host]" in uncommented and "[pf]" in uncommented  # every section is there to uncomment


def test_sample_config_is_valid_and_has_the_promised_policy(tmp_path, monkeypatch):
    from jailhooks.app import load_app

    text = (CONTRIB / "jailhooks.toml").read_text().replace('mode = "auto"', f'mode = "simulated"\nstate_dir = "{tmp_path}"')
    path = tmp_path / "jailhooks.toml"
    path.write_text(text)
    app = load_app(str(path))
    assert app.settings.for_jail("pf", "mail")["allow"][0]["port"] == ["25", "587"]  # only mail may send SMTP
    web = app.settings.for_jail("pf", "web")
    assert [r["port"] for r in web["allow"]] == [["80", "443"], ["5432"], ["25"]]
    assert web["users"]["block"][0]["port"] == ["25", "465", "587"]  # web's customers may not send mail
    assert app.settings.section("pf")["allow"][0]["port"] == ["53"]  # and DNS for everyone
    # what these rules do to packets: tests/test_policy.py


def test_pf_conf_fragment_has_the_hooks_in_order():
    from jailhooks.pf.syntax import parse

    rs = parse((CONTRIB / "pf.conf").read_text().replace("$ext_if", "em0").replace('ext_if = "em0"', ""), in_anchor=False)
    assert [r.kind for r in rs.rules][:2] == ["nat-anchor", "rdr-anchor"]
    assert [r.anchor for r in rs.rules if r.kind == "anchor"] == ["jailhooks/*"]
