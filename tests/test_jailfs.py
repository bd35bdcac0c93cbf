"""Files inside a jail root: a jail's root can plant symlinks; the host must
never follow them (nothing outside the jail is read or written)."""
from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jailhooks import jailfs
from jailhooks.errors import DataError


@pytest.fixture
def jail(tmp_path):
    root = tmp_path / "jail"
    (root / "etc").mkdir(parents=True)
    host_file = tmp_path / "host-master.passwd"
    host_file.write_text("root:secret\n")
    return root, host_file


def test_write_and_keep_other_settings(jail, env, cli):
    root, _ = jail
    (root / "etc" / "pw.conf").write_text("# site defaults\ndefaultshell = sh\nminuid = 1000\n")
    os.chmod(root / "etc" / "pw.conf", 0o640)
    env.write_config(f'[jail.web]\npath = "{root}"\nip4 = "192.0.2.10"\n')
    assert cli("run", "create", "web").code == 0
    text = (root / "etc" / "pw.conf").read_text()
    assert text == ("# site defaults\ndefaultshell = sh\nminuid = 100000\nmaxuid = 100999\nmingid = 100000\nmaxgid = 100999\n"
                    "# jailhooks: UIDs 100000-100999 of jail web (jailhooks registry recover reads this)\n")
    assert oct(os.stat(root / "etc" / "pw.conf").st_mode & 0o777) == "0o640"
    assert (root / "etc" / "adduser.conf").read_text() == "uidstart=100000\n"


@pytest.mark.parametrize("attack", ["etc-dir", "file", "dangling", "adduser"])
def test_symlink_attacks_are_refused(jail, env, cli, attack, tmp_path):
    root, host_file = jail
    if attack == "etc-dir":
        os.rmdir(root / "etc")
        outside = tmp_path / "outside-etc"
        outside.mkdir()
        os.symlink(outside, root / "etc")
        shown = f"{root}/etc"
    elif attack == "file":
        os.symlink(host_file, root / "etc" / "pw.conf")
        shown = f"{root}/etc/pw.conf"
    elif attack == "dangling":
        os.symlink(tmp_path / "does-not-exist", root / "etc" / "pw.conf")
        shown = f"{root}/etc/pw.conf"
    else:
        (root / "etc" / "pw.conf").write_text("")
        os.symlink(host_file, root / "etc" / "adduser.conf")
        shown = f"{root}/etc/adduser.conf"
    env.write_config(f'[jail.web]\npath = "{root}"\nip4 = "192.0.2.10"\n')
    res = cli("run", "create", "web")
    assert res.code == 65, res.err
    assert f"{shown} is a symbolic link inside the jail; refusing to follow it" in res.err
    assert host_file.read_text() == "root:secret\n"
    assert not (tmp_path / "does-not-exist").exists()
    assert not (tmp_path / "outside-etc" / "pw.conf").exists() if attack == "etc-dir" else True
    assert "undone: uids: release UIDs" in res.err  # the lease made by this run is gone again


def test_read_refuses_symlinks_and_non_files(jail):
    root, host_file = jail
    os.symlink(host_file, root / "etc" / "passwd")
    with pytest.raises(DataError, match="symbolic link"):
        jailfs.read_text(str(root), "etc/passwd")
    os.mkfifo(root / "etc" / "group")
    with pytest.raises(DataError, match="not a regular file|symbolic"):
        jailfs.read_text(str(root), "etc/group")
    assert jailfs.read_text(str(root), "etc/missing") is None
    with pytest.raises(DataError, match="bad path"):
        jailfs.read_text(str(root), "../etc/passwd")


def test_check_audits_users_against_the_block(env, cli, tmp_path):
    roots = {}
    for name in ("web", "mail"):
        roots[name] = tmp_path / name
        (roots[name] / "etc").mkdir(parents=True)
    env.write_config("".join(f'[jail.{n}]\npath = "{r}"\nip4 = "192.0.2.{i}"\n' for i, (n, r) in enumerate(roots.items(), 10)))
    assert cli("run", "create", "web").code == 0
    assert cli("run", "create", "mail").code == 0
    (roots["web"] / "etc" / "passwd").write_text(
        "root:*:0:0::0:0:Charlie &:/root:/bin/sh\n"
        "www:*:80:80::0:0:World Wide Web Owner:/nonexistent:/usr/sbin/nologin\n"
        "alice:*:100001:100001::0:0:Alice:/home/alice:/bin/sh\n"
        "bob:*:1001:1001::0:0:Bob:/home/bob:/bin/sh\n"
        "eve:*:101005:101005::0:0:Eve:/home/eve:/bin/sh\n")
    res = cli("check", "web")
    assert res.code == 1
    assert "jail web: user bob (1001) is outside its block 100000-100999" in res.out
    assert "jail web: user eve (101005) is inside the block of jail mail" in res.out
    assert "alice" not in res.out
    # the accounts outside the block, and what the default match (address) does with them
    assert ("jail web: 4 account(s) outside its UID block 100000-100999: root (0), www (80), bob (1001), "
            "eve (101005); the jail's rules (pf.allow/block) apply to them, its users' rules (pf.users) do not") in res.out
    # names come from the jail's root: printed without the escapes they may carry
    (roots["web"] / "etc" / "group").write_text("ev\x1b[2Jil:*:1002:\n")
    res = cli("check", "web")
    assert "\x1b" not in res.out and "jail web: group ev??2Jil (1002) is outside its block" in res.out


def test_a_temp_file_left_by_a_killed_run_is_cleaned_up(jail):
    root, _ = jail
    stale = root / "etc" / ".pw.conf.jailhooks.99999"  # a run killed between write and rename
    stale.write_text("half")
    jailfs.write_text(str(root), "etc/pw.conf", "minuid = 100000\n")
    assert not stale.exists()
    assert sorted(p.name for p in (root / "etc").iterdir()) == ["pw.conf"]


@given(st.lists(st.text(alphabet=" \t=#_-xyzminuidstart0123456789é\u00a0", max_size=20), max_size=6))
def test_pw_conf_keys_are_read_as_pw_writes_them(lines):
    """A line's key: letters and '_' after optional blanks, then '=', a blank
    or the end of the line (the pattern it replaces is the oracle)."""
    import re

    from jailhooks.plugins.uids import _key_of, set_keys

    for line in lines:
        m = re.match(r"\s*([A-Za-z_]+)\s*(=|\s)", line + " ")
        assert _key_of(line) == (m.group(1) if m else None)
    text = "\n".join(lines)
    out = set_keys(text, {"minuid": "1000", "maxuid": "1999"}, " = ").splitlines()
    assert [_key_of(line) for line in out].count("minuid") == 1
    assert "minuid = 1000" in out and "maxuid = 1999" in out


def test_replace_file_syncs_the_file_and_its_directory_and_a_failure_keeps_the_old_file(tmp_path, monkeypatch):
    import os
    import stat

    from jailhooks import jailfs

    target = tmp_path / "jail.conf"
    target.write_text("old\n")
    target.chmod(0o640)
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)), real_fsync(fd)))
    jailfs.replace_file(str(target), b"new\n", 0o640)
    assert target.read_text() == "new\n" and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert synced == [False, True]  # the new file, then the directory that holds the rename
    monkeypatch.setattr(os, "rename", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError):
        jailfs.replace_file(str(target), b"newer\n", 0o640)
    assert target.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["jail.conf"]
