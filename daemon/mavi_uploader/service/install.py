"""install-service / uninstall-service: what to write (the service-files/ templates rendered)
and run to enable them, as a plan: pure data, which install_apply.py describes (--dry-run) or
carries out."""

from __future__ import annotations

import getpass
import os
import pwd
import re
import shlex
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

from mavi_uploader.config import settings
from mavi_uploader.config.model import AfterUpload, Config
from mavi_uploader.config.settings import APP_NAME

SERVICE = "mavi-uploader.service"
LABEL = "ai.memories.mavi-uploader"
SERVICE_USER = "mavi-uploader"
SYSTEM_UNIT = Path("/etc/systemd/system") / SERVICE
SYSTEM_WANTS = Path("/etc/systemd/system/multi-user.target.wants") / SERVICE
SYSTEM_CONFIG = Path("/etc/mavi-uploader/config.toml")
SYSTEM_ENV_FILE = Path("/etc/mavi-uploader/env")
SYSTEM_STATE_DIR = Path("/var/lib/mavi-uploader")
SYSUSERS_FILE = Path("/etc/sysusers.d/mavi-uploader.conf")
# Templates live in service-files/ at the top of the source tree; a wheel carries them as
# mavi_uploader/service-files (hatch force-include), so both places are searched.
_CHECKOUT_TEMPLATES = Path(__file__).resolve().parents[3] / "service-files"
_HOMES = (Path("/home"), Path("/root"), Path("/run/user"))  # what ProtectHome= hides
_TMPS = (Path("/tmp"), Path("/var/tmp"))  # noqa: S108 - what PrivateTmp= replaces
_PLACEHOLDER = re.compile(r"\$\{([a-z_]+)\}")  # only ${name}: "$MAINPID" is left to systemd


class InstallError(Exception):
    """The service cannot be installed as asked; str() says why and what to do. CLI exits 2."""


@dataclass(frozen=True)
class PlannedFile:
    path: Path
    content: str
    mode: int


@dataclass(frozen=True)
class InstallPlan:
    """What install/uninstall does, in apply() order: directories, files, commands, remove."""

    files: tuple[PlannedFile, ...]
    commands: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...]
    directories: tuple[Path, ...] = ()  # created before the files (launchd's log folder)
    remove: tuple[Path, ...] = ()  # deleted after the commands ran (uninstall)


def render(name: str, values: Mapping[str, str]) -> str:
    """service-files/`name` with every ${field} replaced; values must already be escaped."""
    folders = (resources.files("mavi_uploader") / "service-files", _CHECKOUT_TEMPLATES)
    found = [folder / name for folder in folders if (folder / name).is_file()]
    if not found:
        raise InstallError(f"service template {name} not found; reinstall mavi-uploader")
    text = found[0].read_text(encoding="utf-8")
    unknown = sorted(set(_PLACEHOLDER.findall(text)) - set(values))
    if unknown:
        raise InstallError(f"service template {name} has unknown fields: {', '.join(unknown)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _text(value: object) -> str:
    text = str(value)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise InstallError(f"{text!r} holds control characters; a service file cannot name it")
    return text


def _sd_inner(value: object) -> str:
    """A value inside "..." on a unit-file line: specifiers and C escapes neutralised."""
    return _text(value).replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"')


def _sd_word(value: str, *, exec_line: bool = False) -> str:
    """One word of a unit-file line, quoted only when it needs to be."""
    word = _sd_inner(value).replace("$", "$$") if exec_line else _sd_inner(value)
    return word if word and not re.search(r"[\s\"'\\;]", value) else f'"{word}"'


def _under(path: Path, roots: Iterable[Path]) -> bool:
    paths = {Path(os.path.abspath(path)), path.resolve()}  # a symlink may lead under a root
    return any(p.is_relative_to(root) for p in paths for root in roots)


def _command(executable: str | None) -> tuple[str, ...]:
    """The argv that starts this mavi-uploader: the running script, else this interpreter."""
    if executable is not None:
        argv = (executable,) if Path(executable).is_file() else tuple(shlex.split(executable))
        if not argv or not os.path.isabs(argv[0]):
            raise InstallError(f"executable {executable!r}: give an absolute path")
        return argv
    script = Path(sys.argv[0])
    if script.name == APP_NAME and script.is_file():
        return (os.path.abspath(script),)
    # Started as `python -m` (or by tests): this interpreter surely has the package. Not
    # resolved: a venv's python is a symlink, and its path is what selects the venv.
    return (sys.executable, "-m", "mavi_uploader")


def _user_defaults(platform: str, home: Path | None) -> tuple[Path, Path]:
    """platformdirs' config file and state dir for `home` (the current user's when None)."""
    if home is None and platform == sys.platform:
        return settings.default_config_path(), settings.default_state_dir()
    home = Path.home() if home is None else home
    if platform == "darwin":
        base = home / "Library" / "Application Support" / APP_NAME
        return base / "config.toml", base
    return home / ".config" / APP_NAME / "config.toml", home / ".local" / "state" / APP_NAME


def _writable(config: Config | None) -> list[Path]:
    """Folders the daemon writes besides its state dir: watches for move/delete, done_dir."""
    if config is None or config.after_upload is AfterUpload.KEEP:
        return []
    done = [config.done_dir] if config.after_upload is AfterUpload.MOVE and config.done_dir else []
    return list(dict.fromkeys([*(w.path for w in config.watches), *done]))


def plan_install(
    *,
    system: bool,
    platform: str = sys.platform,
    executable: str | None = None,
    config: Config | None = None,
    home: Path | None = None,
    user: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> InstallPlan:
    """What install-service writes and runs.

    Args:
        config: what the service reads; None: /etc/mavi-uploader/config.toml if present
            (--system), else what this user's CLI reads (nothing when `home` is given).
        user: the account of a --system service; default mavi-uploader, created for you.
        environ: the installing shell's environment (default os.environ), which the service
            does not inherit: a key only there gets a warning.
    """
    environ = os.environ if environ is None else environ
    if platform == "darwin" and system:
        msg = "--system is not supported on macOS: without it, a LaunchAgent runs as you"
        raise InstallError(msg + " whenever you are logged in")
    if not platform.startswith(("linux", "darwin")):
        raise InstallError(f"install-service supports Linux (systemd) and macOS, not {platform}")
    if user is not None and not system:
        raise InstallError("a service user applies to --system only; a user service runs as you")
    argv = _command(executable)
    if system:
        if config is None and SYSTEM_CONFIG.is_file():
            path = str(SYSTEM_CONFIG)
            config = settings.load_config(config_path=path, env={}, require_api_key=False)
        key_notes = _key_warning(config, environ, SYSTEM_CONFIG, platform, system=True)
        return _systemd_system(argv, config, user or SERVICE_USER, key_notes)
    if config is None and home is None:
        config = settings.load_config(require_api_key=False)
    config_file, state_dir = _user_defaults(platform, home)
    if config is not None:
        config_file, state_dir = config.config_file or config_file, config.state_dir
    start = config is not None and bool(config.watches)
    notes = [] if start else [f"create {config_file} with your [[watch]] folders (see README)"]
    notes += _key_warning(config, environ, config_file, platform, system=False)
    make = _launchd if platform == "darwin" else _systemd_user
    return make(argv, config_file, state_dir, home or Path.home(), start, notes)


def _key_warning(
    config: Config | None, environ: Mapping[str, str], config_file: Path, platform: str,
    *, system: bool,
) -> list[str]:  # fmt: skip
    """A service reads its key from api_key_file (--system also from SYSTEM_ENV_FILE), never
    from the shell that installs it: warn when there is no key the service will find."""
    if config is not None and config.api_key_file is not None:
        return []
    in_shell = bool(environ.get(settings.ENV_API_KEY, "").strip())
    shell_only = f"{settings.ENV_API_KEY} is set in this shell only; the service will not see it"
    if system:  # the unit's EnvironmentFile= (root's, unreadable here: existence is enough)
        missing = not os.path.exists(SYSTEM_ENV_FILE)
        return [f"warning: {shell_only}, nor {SYSTEM_ENV_FILE}"] if in_shell and missing else []
    what = shell_only if in_shell else "no API key is configured for the service: it exits 2"
    key_file = config_file.parent / "api-key"
    fix = f'put the key alone in {key_file} (chmod 600) and set api_key_file = "{key_file}"'
    fix += f" in {config_file}"
    if platform.startswith("linux"):
        fix += (
            f", or add EnvironmentFile=%h/.config/{APP_NAME}/env (a chmod 600 file holding"
            f" {settings.ENV_API_KEY}=...) with `systemctl --user edit {SERVICE}`"
        )
    return [f"warning: {what}; {fix}"]


def _systemd_system(
    argv: tuple[str, ...], config: Config | None, user: str, key_notes: list[str]
) -> InstallPlan:
    if user != SERVICE_USER:
        try:
            pwd.getpwnam(user)
        except KeyError:
            msg = f"user {user} does not exist: create it, or leave it out to use {SERVICE_USER}"
            raise InstallError(msg) from None
    watches = [w.path for w in config.watches] if config else []
    writable, mode = _writable(config), config.after_upload.value if config else "keep"
    programs = [Path(a) for a in argv if os.path.isabs(a)]
    seen = [*watches, *writable, *programs]
    rw_block = [f"# after_upload = {mode}: the watch folders stay read-only"]
    if writable:
        rw_block = [f"# after_upload = {mode}: the daemon writes these folders"]
        rw_block += [f"ReadWritePaths={_sd_word(f'-{p}')}" for p in writable]
    if mode == "move":  # rename(2) never crosses mount points, and each path is a bind mount
        rw_block.append("# done_dir is a separate mount: a move there is a copy, then a delete")
    values = {
        "exec_start": " ".join(_sd_word(a, exec_line=True) for a in argv),
        "user": _text(user),
        "protect_home": "read-only" if any(_under(p, _HOMES) for p in seen) else "yes",
        "private_tmp": "no" if any(_under(p, _TMPS) for p in seen) else "yes",
        "read_write_paths": "\n".join(rw_block),
    }
    files = [PlannedFile(SYSTEM_UNIT, render("mavi-uploader.service", values), 0o644)]
    commands: list[tuple[str, ...]] = []
    if user == SERVICE_USER:
        sysusers = render("mavi-uploader.sysusers", {"user": user})
        files.append(PlannedFile(SYSUSERS_FILE, sysusers, 0o644))
        commands.append(("systemd-sysusers", str(SYSUSERS_FILE)))
    commands += [("systemctl", "daemon-reload"), ("systemctl", "enable", SERVICE)]
    notes = [
        *key_notes,
        f"API key: put MAVI_API_KEY=... in {SYSTEM_ENV_FILE} (owner root, chmod 600: systemd"
        f" reads it before dropping privileges), or use an api_key_file only {user} can read",
    ]
    if config is None or not config.watches:
        notes.append(
            f"create {SYSTEM_CONFIG} with your [[watch]] folders (see README), run"
            f" install-service --system again (ReadWritePaths= follows after_upload), then"
            f" systemctl start {SERVICE}"
        )
    else:
        commands.append(("systemctl", "restart", SERVICE))
        if config.config_file not in (None, SYSTEM_CONFIG):
            notes.append(f"the service reads {SYSTEM_CONFIG}: copy {config.config_file} there")
        if user != "root":
            folders = ", ".join(map(str, dict.fromkeys([*watches, *writable])))
            rights = "rwX" if writable else "rX"
            notes.append(
                f"the service runs as {user}: it needs {rights} on {folders}"
                f" (e.g. setfacl -R -m u:{user}:{rights},d:u:{user}:{rights} FOLDER)"
            )
    if config and config.done_dir and mode == "move" and not config.done_dir.is_dir():
        # A ReadWritePaths= folder that is missing at start stays read-only.
        notes.append(f"create done_dir {config.done_dir}, writable by {user}, before start")
    if user != "root" and any(_under(p, _HOMES) for p in programs):
        notes.append(
            f"{argv[0]} is in a home directory, which {user} usually cannot enter: install"
            " mavi-uploader system-wide (e.g. a venv in /opt/mavi-uploader) and run this again"
        )
    status = f"MAVI_UPLOADER_STATE_DIR={SYSTEM_STATE_DIR} mavi-uploader status"
    notes.append(f"logs: journalctl -u {SERVICE} -f; reload: systemctl reload {SERVICE}; {status}")
    return InstallPlan(tuple(files), tuple(commands), tuple(notes))


def _user_unit(home: Path) -> Path:
    return home / ".config" / "systemd" / "user" / SERVICE


def _systemd_user(
    argv: tuple[str, ...], config_file: Path, state_dir: Path, home: Path, start: bool,
    notes: list[str],
) -> InstallPlan:  # fmt: skip
    values = {
        "exec_start": " ".join(_sd_word(a, exec_line=True) for a in argv),
        "config_file": _sd_inner(config_file),
        "state_dir": _sd_inner(state_dir),
    }
    content = render("mavi-uploader-user.service", values)
    ctl = ("systemctl", "--user")
    commands = [(*ctl, "daemon-reload"), (*ctl, "enable", SERVICE), (*ctl, "restart", SERVICE)]
    if not start:
        notes.append(f"then: {shlex.join(commands.pop())}")
    name = getpass.getuser()
    if not (Path("/var/lib/systemd/linger") / name).exists():
        notes.append(
            f"run `loginctl enable-linger {name}` once so the service starts at boot and keeps"
            " running after you log out; without it, it runs only while you are logged in"
        )
    notes.append(
        f"logs: journalctl --user -u {SERVICE} -f; reload: systemctl --user reload {SERVICE}"
    )
    unit = PlannedFile(_user_unit(home), content, 0o644)
    return InstallPlan((unit,), tuple(commands), tuple(notes))


def _launchd_paths(home: Path) -> tuple[Path, Path]:
    return home / "Library/LaunchAgents" / f"{LABEL}.plist", home / "Library/Logs" / APP_NAME


def _launchd(
    argv: tuple[str, ...], config_file: Path, state_dir: Path, home: Path, start: bool,
    notes: list[str],
) -> InstallPlan:  # fmt: skip
    plist, log_dir = _launchd_paths(home)
    paths = {"config_file": config_file, "state_dir": state_dir, "log_dir": log_dir}
    values = {key: xml_escape(_text(path)) for key, path in paths.items()}
    words = [f"\t\t<string>{xml_escape(_text(a))}</string>" for a in argv]
    values["program_arguments"] = "\n".join(words)
    agent = PlannedFile(plist, render(f"{LABEL}.plist", values), 0o644)
    domain, ctl = f"gui/{os.getuid()}", "launchctl"
    target = f"{domain}/{LABEL}"
    commands: list[tuple[str, ...]] = [(ctl, "bootout", target), (ctl, "enable", target)]
    commands.append((ctl, "bootstrap", domain, str(plist)))
    if not start:
        notes.append(f"then: {shlex.join(commands.pop())}")
    notes += [
        f"logs: {log_dir}/mavi-uploader.log and .err.log; reload: launchctl kill HUP {target}",
        "macOS privacy: watching Desktop, Documents, Downloads or external volumes may need Full"
        f" Disk Access for {argv[0]} (System Settings > Privacy & Security)",
    ]
    return InstallPlan((agent,), tuple(commands), tuple(notes), directories=(log_dir,))


def plan_uninstall(
    *, system: bool, platform: str = sys.platform, home: Path | None = None
) -> InstallPlan:
    """What uninstall-service stops and removes; config, key, journal and logs are kept."""
    home = Path.home() if home is None else home
    remove: tuple[Path, ...]
    if platform == "darwin" and not system:
        plist, log_dir = _launchd_paths(home)
        command: tuple[str, ...] = ("launchctl", "bootout", f"gui/{os.getuid()}/{LABEL}")
        unit, remove = plist, (plist,)
        kept = f"kept: your config, the state dir (the journal) and the logs in {log_dir}"
    elif not platform.startswith("linux"):
        raise InstallError(f"no {'--system ' if system else ''}service to remove on {platform}")
    elif system:
        unit, remove = SYSTEM_UNIT, (SYSTEM_UNIT, SYSTEM_WANTS, SYSUSERS_FILE)
        command = ("systemctl", "disable", "--now", SERVICE)
        kept = f"kept: /etc/mavi-uploader, {SYSTEM_STATE_DIR} and the user {SERVICE_USER}"
    else:
        unit = _user_unit(home)
        remove = (unit, unit.parent / "default.target.wants" / SERVICE)
        command = ("systemctl", "--user", "disable", "--now", SERVICE)
        kept = "kept: your config and the state dir (the journal)"
    if not unit.exists():
        return InstallPlan((), (), (f"no service installed at {unit}", kept), remove=remove)
    return InstallPlan((), (command,), (kept,), remove=remove)
