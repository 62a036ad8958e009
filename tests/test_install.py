"""install-service / uninstall-service: rendered units and plist, dry-run text, apply() with fakes.

Nothing here touches the real system: user services go to a home in tmp_path, system plans are
only rendered (and checked with `systemd-analyze verify` on a copy in tmp_path).
"""

from __future__ import annotations

import os
import plistlib
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from mavi_uploader.cli.main import main
from mavi_uploader.config.model import Config
from mavi_uploader.config.settings import load_config
from mavi_uploader.service import install
from mavi_uploader.service.install import InstallError, InstallPlan, plan_install, plan_uninstall
from mavi_uploader.service.install_apply import apply, describe

REPO = Path(__file__).resolve().parent.parent
OUTSIDE = "/opt/mavi/bin/mavi-uploader"  # not under /home or /tmp: keeps ProtectHome/PrivateTmp


def make_config(tmp_path: Path, body: str = "", *, watch: str = "/srv/cams/in") -> Config:
    path = tmp_path / "config.toml"
    state = tmp_path / "state"
    path.write_text(f'state_dir = "{state}"\n{body}\n[[watch]]\npath = "{watch}"\n')
    return load_config(config_path=str(path), env={}, require_api_key=False)


def fake_script(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "mavi-uploader"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    return script


class Recorder:
    def __init__(self, codes: dict[str, int] | None = None) -> None:
        self.commands: list[tuple[str, ...]] = []
        self.codes = codes or {}

    def __call__(self, command: Sequence[str]) -> int:
        self.commands.append(tuple(command))
        return self.codes.get(" ".join(command), 0)


def found(tool: str) -> str | None:
    return f"/usr/bin/{tool}"


def missing(tool: str) -> str | None:
    return None


def test_every_template_is_in_service_files() -> None:
    names = sorted(p.name for p in (REPO / "service-files").iterdir() if p.name != "README.md")
    assert names == [
        "ai.memories.mavi-uploader.plist",
        "mavi-uploader-user.service",
        "mavi-uploader.service",
        "mavi-uploader.sysusers",
    ]


def test_unknown_template_field_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "t.service").write_text("ExecStart=${exec_start} ${bogus}\n")
    monkeypatch.setattr(install, "_CHECKOUT_TEMPLATES", tmp_path)
    with pytest.raises(InstallError, match="bogus"):
        install.render("t.service", {"exec_start": "/x"})
    assert install.render("t.service", {"exec_start": "/x", "bogus": "$MAINPID"}) == (
        "ExecStart=/x $MAINPID\n"
    )


def test_user_unit_names_the_executable_config_and_state(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    script = fake_script(tmp_path / "bin")
    plan = plan_install(
        system=False, platform="linux", executable=str(script), config=config, home=tmp_path
    )
    (unit,) = plan.files
    assert unit.path == tmp_path / ".config/systemd/user/mavi-uploader.service"
    assert unit.mode == 0o644
    text = unit.content
    assert f"ExecStart={script} run\n" in text
    assert f'Environment="MAVI_UPLOADER_CONFIG={tmp_path / "config.toml"}"' in text
    assert f'Environment="MAVI_UPLOADER_STATE_DIR={tmp_path / "state"}"' in text
    for line in (
        "Type=notify",
        "WatchdogSec=60",
        "Restart=on-failure",
        "TimeoutStopSec=30",
        "RestartPreventExitStatus=2 3",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "WantedBy=default.target",
        "NoNewPrivileges=yes",
    ):
        assert f"\n{line}\n" in text
    assert "User=" not in text and "${" not in text.replace("${...}", "")
    assert plan.commands == (
        ("systemctl", "--user", "daemon-reload"),
        ("systemctl", "--user", "enable", "mavi-uploader.service"),
        ("systemctl", "--user", "restart", "mavi-uploader.service"),
    )


def test_user_unit_without_a_config_says_to_write_one(tmp_path: Path) -> None:
    plan = plan_install(system=False, platform="linux", executable=OUTSIDE, home=tmp_path)
    config_file = tmp_path / ".config/mavi-uploader/config.toml"
    assert f'MAVI_UPLOADER_CONFIG={config_file}"' in plan.files[0].content
    assert (
        f'MAVI_UPLOADER_STATE_DIR={tmp_path}/.local/state/mavi-uploader"' in plan.files[0].content
    )
    assert ("systemctl", "--user", "restart", "mavi-uploader.service") not in plan.commands
    assert any(f"create {config_file}" in n for n in plan.notes)
    assert any("then: systemctl --user restart" in n for n in plan.notes)


def test_system_unit(tmp_path: Path) -> None:
    plan = plan_install(
        system=True, platform="linux", executable=OUTSIDE, config=make_config(tmp_path)
    )
    unit, sysusers = plan.files
    assert unit.path == Path("/etc/systemd/system/mavi-uploader.service")
    assert sysusers.path == Path("/etc/sysusers.d/mavi-uploader.conf")
    text = unit.content
    for line in (
        "Type=notify",
        "WatchdogSec=60",
        "Restart=on-failure",
        "TimeoutStopSec=30",
        "RestartPreventExitStatus=2 3",
        "ExecReload=/bin/kill -HUP $MAINPID",
        f"ExecStart={OUTSIDE} run",
        "User=mavi-uploader",
        "StateDirectory=mavi-uploader",
        "ConfigurationDirectory=mavi-uploader",
        'Environment="MAVI_UPLOADER_CONFIG=%E/mavi-uploader/config.toml"',
        'Environment="MAVI_UPLOADER_STATE_DIR=%S/mavi-uploader"',
        "EnvironmentFile=-%E/mavi-uploader/env",
        "NoNewPrivileges=yes",
        "AmbientCapabilities=CAP_LEASE",  # the writer probe's lease on other users' files
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ReadWritePaths=%S/mavi-uploader",
        "WantedBy=multi-user.target",
    ):
        assert f"\n{line}\n" in text, line
    assert "u mavi-uploader " in sysusers.content
    assert plan.commands == (
        ("systemd-sysusers", "/etc/sysusers.d/mavi-uploader.conf"),
        ("systemctl", "daemon-reload"),
        ("systemctl", "enable", "mavi-uploader.service"),
        ("systemctl", "restart", "mavi-uploader.service"),
    )
    assert any("/etc/mavi-uploader/env" in n for n in plan.notes)
    assert any("copy" in n and "config.toml" in n for n in plan.notes)  # not /etc's config


def test_system_unit_for_an_existing_user_creates_no_user(tmp_path: Path) -> None:
    plan = plan_install(
        system=True, platform="linux", executable=OUTSIDE, user="root", config=make_config(tmp_path)
    )
    assert [f.path.name for f in plan.files] == ["mavi-uploader.service"]
    assert "\nUser=root\n" in plan.files[0].content
    assert not any(c[0] == "systemd-sysusers" for c in plan.commands)
    with pytest.raises(InstallError, match="does not exist"):
        plan_install(system=True, platform="linux", executable=OUTSIDE, user="no-such-user-x")


@pytest.mark.parametrize(
    ("after", "watch_rw", "done_rw"),
    [("keep", False, False), ("delete", True, False), ("move", True, True)],
)
def test_read_write_paths_follow_after_upload(
    tmp_path: Path, after: str, watch_rw: bool, done_rw: bool
) -> None:
    body = f'after_upload = "{after}"\ndone_dir = "/srv/cams/done"'
    plan = plan_install(
        system=True, platform="linux", executable=OUTSIDE, config=make_config(tmp_path, body)
    )
    lines = plan.files[0].content.splitlines()
    assert ("ReadWritePaths=-/srv/cams/in" in lines) is watch_rw
    assert ("ReadWritePaths=-/srv/cams/done" in lines) is done_rw
    assert next(ln for ln in lines if ln.startswith("ReadWritePaths=")) == (
        "ReadWritePaths=%S/mavi-uploader"
    )


def test_home_and_tmp_folders_relax_protect_home_and_private_tmp(tmp_path: Path) -> None:
    config = make_config(tmp_path, watch="/home/alice/Videos")
    text = plan_install(system=True, platform="linux", executable=OUTSIDE, config=config)
    assert "\nProtectHome=read-only\n" in text.files[0].content
    assert "\nPrivateTmp=yes\n" in text.files[0].content
    script = fake_script(tmp_path / "bin")  # under /tmp: a private /tmp would hide it
    text = plan_install(system=True, platform="linux", executable=str(script), config=config)
    assert "\nPrivateTmp=no\n" in text.files[0].content


def test_odd_paths_are_quoted_and_escaped(tmp_path: Path) -> None:
    script = fake_script(tmp_path / "my 100% $apps")
    config = make_config(tmp_path, 'after_upload = "delete"', watch="/srv/a b")
    unit = plan_install(system=True, platform="linux", executable=str(script), config=config)
    text = unit.files[0].content
    quoted = str(script).replace("%", "%%").replace("$", "$$")
    assert f'ExecStart="{quoted}" run\n' in text
    assert 'ReadWritePaths="-/srv/a b"\n' in text
    with pytest.raises(InstallError, match="control characters"):
        weird = fake_script(tmp_path / "new\nline")
        plan_install(system=True, platform="linux", executable=str(weird), config=config)


def systemd_analyze(tmp_path: Path, unit_text: str, *user: str) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / "verify"
    folder.mkdir(exist_ok=True)
    unit = folder / "mavi-uploader.service"
    unit.write_text(unit_text)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_LEVEL": "notice"}
    command = ["systemd-analyze", *user, "verify", "--man=no", str(unit)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def assert_verified(result: subprocess.CompletedProcess[str]) -> None:
    ours = [ln for ln in result.stderr.splitlines() if "mavi-uploader" in ln]
    assert result.returncode == 0 and not ours, result.stderr


@pytest.fixture
def analyze() -> None:
    if shutil.which("systemd-analyze") is None:
        print("skip reason: systemd-analyze is not installed")
        pytest.skip("systemd-analyze is not installed")


@pytest.mark.usefixtures("analyze")
def test_systemd_analyze_verifies_the_system_unit(tmp_path: Path) -> None:
    script = fake_script(tmp_path / "my bin")  # verify wants ExecStart= to exist
    body = 'after_upload = "move"\ndone_dir = "/srv/done 50%"'
    config = make_config(tmp_path, body, watch="/home/alice/Videos")
    plan = plan_install(system=True, platform="linux", executable=str(script), config=config)
    assert_verified(systemd_analyze(tmp_path, plan.files[0].content))
    broken = systemd_analyze(tmp_path, plan.files[0].content.replace("Type=", "Tpye="))
    assert "Tpye" in broken.stderr  # the check above would have seen a mistake


@pytest.mark.usefixtures("analyze")
def test_systemd_analyze_verifies_the_user_unit(tmp_path: Path) -> None:
    script = fake_script(tmp_path / "bin")
    plan = plan_install(
        system=False,
        platform="linux",
        executable=str(script),
        config=make_config(tmp_path),
        home=tmp_path,
    )
    assert_verified(systemd_analyze(tmp_path, plan.files[0].content, "--user"))


def test_launch_agent_plist(tmp_path: Path) -> None:
    config = make_config(tmp_path, watch="/Users/al/Movies & <Clips>")
    plan = plan_install(
        system=False, platform="darwin", executable=f"{OUTSIDE} --x", config=config, home=tmp_path
    )
    (agent,) = plan.files
    assert agent.path == tmp_path / "Library/LaunchAgents/ai.memories.mavi-uploader.plist"
    doc = plistlib.loads(agent.content.encode())
    logs = tmp_path / "Library/Logs/mavi-uploader"
    assert doc["Label"] == "ai.memories.mavi-uploader"
    assert doc["ProgramArguments"] == [OUTSIDE, "--x", "run"]
    assert doc["RunAtLoad"] is True
    assert doc["KeepAlive"] == {"SuccessfulExit": False}
    assert doc["ThrottleInterval"] == 30
    assert doc["EnvironmentVariables"]["MAVI_UPLOADER_CONFIG"] == str(tmp_path / "config.toml")
    assert doc["EnvironmentVariables"]["MAVI_UPLOADER_STATE_DIR"] == str(tmp_path / "state")
    assert doc["StandardOutPath"] == f"{logs}/mavi-uploader.log"
    assert doc["StandardErrorPath"] == f"{logs}/mavi-uploader.err.log"
    assert plan.directories == (logs,)
    assert [c[1] for c in plan.commands] == ["bootout", "enable", "bootstrap"]
    with pytest.raises(InstallError, match="macOS"):
        plan_install(system=True, platform="darwin", executable=OUTSIDE)


def test_xml_special_characters_in_paths(tmp_path: Path) -> None:
    home = tmp_path / "A & <B>"
    plan = plan_install(system=False, platform="darwin", executable=OUTSIDE, home=home)
    doc = plistlib.loads(plan.files[0].content.encode())
    assert doc["StandardOutPath"].startswith(str(home))


def test_refusals() -> None:
    with pytest.raises(InstallError, match="win32"):
        plan_install(system=False, platform="win32", executable=OUTSIDE)
    with pytest.raises(InstallError, match="--system only"):
        plan_install(system=False, platform="linux", executable=OUTSIDE, user="bob")
    with pytest.raises(InstallError, match="absolute"):
        plan_install(system=False, platform="linux", executable="mavi-uploader")


def test_default_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = fake_script(tmp_path / "venv" / "bin")
    monkeypatch.setattr(sys, "argv", [str(script), "install-service"])
    assert install._command(None) == (str(script),)
    monkeypatch.setattr(sys, "argv", ["/somewhere/__main__.py"])
    assert install._command(None) == (sys.executable, "-m", "mavi_uploader")


def test_describe_lists_every_file_command_and_note(tmp_path: Path) -> None:
    plan = plan_install(
        system=True, platform="linux", executable=OUTSIDE, config=make_config(tmp_path)
    )
    text = describe(plan)
    for planned in plan.files:
        assert f"would write {planned.path} (mode 0644)" in text
        assert planned.content.rstrip("\n") in text
    for command in plan.commands:
        assert f"would run: {' '.join(command)}\n" in text
    for note in plan.notes:
        assert note in text


def test_apply_without_systemctl_writes_and_instructs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    plan = plan_install(
        system=False, platform="linux", executable=OUTSIDE, config=make_config(tmp_path), home=home
    )
    runner = Recorder()
    messages = apply(plan, run=runner, which=missing)
    unit = home / ".config/systemd/user/mavi-uploader.service"
    assert unit.read_text() == plan.files[0].content
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert runner.commands == []
    joined = "\n".join(messages)
    assert (
        "systemctl: not available; run this yourself: systemctl --user daemon-reload &&" in joined
    )
    assert "systemctl --user restart mavi-uploader.service" in joined
    assert messages[-len(plan.notes) :] == list(plan.notes)
    if any("enable-linger" in n for n in plan.notes):
        assert "loginctl enable-linger" in joined


def test_apply_runs_commands_only_where_systemd_runs(tmp_path: Path) -> None:
    plan = plan_install(
        system=False,
        platform="linux",
        executable=OUTSIDE,
        config=make_config(tmp_path),
        home=tmp_path / "h",
    )
    runner = Recorder()
    messages = apply(plan, run=runner, which=found, booted=lambda: False)
    assert runner.commands == []
    assert any("systemd is not running here" in m for m in messages)
    messages = apply(plan, run=runner, which=found, booted=lambda: True)
    assert runner.commands == list(plan.commands)
    failing = Recorder({"systemctl --user enable mavi-uploader.service": 1})
    messages = apply(plan, run=failing, which=found, booted=lambda: True)
    assert failing.commands == list(plan.commands[:2])  # stops at the failure
    assert any("failed (exit 1)" in m and "restart" in m for m in messages)


def test_apply_reports_an_unwritable_target(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    plan = InstallPlan((install.PlannedFile(blocker / "x.service", "", 0o644),), (), ())
    with pytest.raises(InstallError, match="cannot write"):
        apply(plan, run=Recorder(), which=missing)


def test_launchd_apply_tolerates_bootout_of_an_unloaded_agent(tmp_path: Path) -> None:
    plan = plan_install(
        system=False,
        platform="darwin",
        executable=OUTSIDE,
        config=make_config(tmp_path),
        home=tmp_path / "h",
    )
    target = f"gui/{os.getuid()}/ai.memories.mavi-uploader"
    runner = Recorder({f"launchctl bootout {target}": 3})
    apply(plan, run=runner, which=found)
    assert runner.commands == list(plan.commands)
    assert (tmp_path / "h/Library/Logs/mavi-uploader").is_dir()


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_uninstall_removes_what_install_wrote(tmp_path: Path, platform: str) -> None:
    home = tmp_path / "home"
    assert plan_uninstall(system=False, platform=platform, home=home).commands == ()
    installed = plan_install(
        system=False, platform=platform, executable=OUTSIDE, config=make_config(tmp_path), home=home
    )
    apply(installed, run=Recorder(), which=missing)
    wants = home / ".config/systemd/user/default.target.wants"
    if platform == "linux":  # what `systemctl --user enable` would have made
        wants.mkdir(parents=True)
        (wants / "mavi-uploader.service").symlink_to("../mavi-uploader.service")
    plan = plan_uninstall(system=False, platform=platform, home=home)
    assert {f.path for f in installed.files} <= set(plan.remove)
    assert plan.commands[0][-1] in ("mavi-uploader.service", f"gui/{os.getuid()}/" + install.LABEL)
    runner = Recorder()
    messages = apply(plan, run=runner, which=found, booted=lambda: True)
    assert runner.commands == list(plan.commands)
    assert not any(f.path.exists() for f in installed.files)
    assert not (wants / "mavi-uploader.service").is_symlink()
    assert any(m.startswith("kept:") for m in messages)


def test_uninstall_system_plan_covers_the_install(tmp_path: Path) -> None:
    installed = plan_install(
        system=True, platform="linux", executable=OUTSIDE, config=make_config(tmp_path)
    )
    plan = plan_uninstall(system=True, platform="linux")
    assert {f.path for f in installed.files} <= set(plan.remove)
    assert install.SYSTEM_WANTS in plan.remove


# ---- where the service finds the API key ------------------------------------------------------

SHELL_KEY = "sk-shell-only-0123456789abcdef"
SHELL_ONLY = "MAVI_API_KEY is set in this shell only"


def test_install_warns_when_the_key_is_only_in_this_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MAVI_API_KEY", SHELL_KEY)
    config = tmp_path / "config.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[[watch]]\npath = "/srv/cams/in"\n')
    assert main(["install-service", "--dry-run", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    (warning,) = [line for line in out.splitlines() if SHELL_ONLY in line]
    assert warning.startswith("note: warning: ")
    assert f'set api_key_file = "{tmp_path / "api-key"}" in {config}' in warning
    assert "chmod 600" in warning
    if sys.platform.startswith("linux"):  # the user unit can take an EnvironmentFile= instead
        assert "EnvironmentFile=" in warning and "systemctl --user edit" in warning
    assert SHELL_KEY not in out
    assert not any(home.rglob("*.service"))  # --dry-run wrote nothing

    key_file = tmp_path / "api-key"
    key_file.write_text(SHELL_KEY + "\n")
    key_file.chmod(0o600)
    config.write_text(f'api_key_file = "{key_file}"\n' + config.read_text())
    assert main(["install-service", "--dry-run", "--config", str(config)]) == 0
    assert SHELL_ONLY not in capsys.readouterr().out  # the service reads the file


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_install_warns_when_no_key_is_configured_at_all(tmp_path: Path, platform: str) -> None:
    plan = plan_install(
        system=False, platform=platform, executable=OUTSIDE, config=make_config(tmp_path),
        home=tmp_path / "home", environ={},
    )  # fmt: skip
    (warning,) = [n for n in plan.notes if "no API key" in n]
    assert f'api_key_file = "{tmp_path / "api-key"}"' in warning
    assert ("EnvironmentFile=" in warning) is (platform == "linux")  # launchd has none


def test_system_install_warns_about_a_shell_only_key_without_an_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(install, "SYSTEM_ENV_FILE", tmp_path / "etc-env")
    config = make_config(tmp_path)

    def notes() -> tuple[str, ...]:
        environ = {"MAVI_API_KEY": SHELL_KEY}
        return plan_install(
            system=True, platform="linux", executable=OUTSIDE, config=config, environ=environ
        ).notes

    (warning,) = [n for n in notes() if SHELL_ONLY in n]
    assert str(tmp_path / "etc-env") in warning and SHELL_KEY not in warning
    (tmp_path / "etc-env").write_text("MAVI_API_KEY=x\n")  # the unit's EnvironmentFile= has it
    assert not [n for n in notes() if SHELL_ONLY in n]
