"""install-service / uninstall-service: render the service-files/ templates, then enable them.

Linux gets a systemd unit (system or user), macOS a launchd LaunchAgent. Planning is pure
(`plan_install`, `plan_uninstall`); `describe` is the --dry-run text; `apply` writes the files
and runs systemctl / launchctl only where they can work, returning instructions otherwise.
"""

from __future__ import annotations

import getpass
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

from mavi_uploader.config import (
    APP_NAME,
    AfterUpload,
    Config,
    default_config_path,
    default_state_dir,
    load_config,
)

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
_CHECKOUT_TEMPLATES = Path(__file__).resolve().parent.parent.parent / "service-files"
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
    """What install/uninstall does, in `apply` order: directories, files, commands, remove."""

    files: tuple[PlannedFile, ...]
    commands: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...]
    directories: tuple[Path, ...] = ()  # created before the files (e.g. launchd's log folder)
    remove: tuple[Path, ...] = ()  # deleted after the commands ran (uninstall)


def read_template(name: str) -> str:
    """The text of service-files/`name`, from the installed package or the source checkout."""
    for folder in (resources.files("mavi_uploader") / "service-files", _CHECKOUT_TEMPLATES):
        if (folder / name).is_file():
            return (folder / name).read_text(encoding="utf-8")
    raise InstallError(
        f"service template {name} not found in the package or in {_CHECKOUT_TEMPLATES};"
        " reinstall mavi-uploader"
    )


def render(name: str, values: Mapping[str, str]) -> str:
    """Template `name` with every ${field} replaced; values must already be escaped."""
    text = read_template(name)
    unknown = sorted(set(_PLACEHOLDER.findall(text)) - set(values))
    if unknown:
        raise InstallError(f"service template {name} has unknown fields: {', '.join(unknown)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _check_text(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InstallError(f"{value!r} holds control characters; a service file cannot name it")
    return value


def _sd_inner(value: str) -> str:
    """A value inside "..." on a unit-file line: specifiers and C escapes neutralised."""
    escaped = _check_text(value).replace("%", "%%").replace("\\", "\\\\")
    return escaped.replace('"', '\\"')


def _sd_word(value: str, *, exec_line: bool = False) -> str:
    """One word of a unit-file line, quoted only when it needs to be."""
    word = _sd_inner(value).replace("$", "$$") if exec_line else _sd_inner(value)
    return word if word and not re.search(r"[\s\"'\\;]", value) else f'"{word}"'


def _under(path: Path, roots: Iterable[Path]) -> bool:
    paths = {Path(os.path.abspath(path)), path.resolve()}  # a symlink may lead under a root
    return any(p.is_relative_to(root) for p in paths for root in roots)


def _command(executable: str | None) -> tuple[str, ...]:
    """The argv that starts this mavi-uploader: the running script, else this interpreter."""
    if executable is None:
        script = Path(sys.argv[0])
        if script.name == APP_NAME and script.is_file():
            return (os.path.abspath(script),)
        # Not started as the script (python -m, tests): the running interpreter surely has us.
        # sys.executable is not resolved: a venv's python is a symlink that selects the venv.
        return (sys.executable, "-m", "mavi_uploader")
    argv = [executable] if Path(executable).is_file() else shlex.split(executable)
    first = argv[0] if argv else ""
    found = os.path.abspath(first) if Path(first).is_file() else shutil.which(first)
    if not found:
        raise InstallError(f"executable {executable!r} not found; give its absolute path")
    return (os.path.abspath(found), *argv[1:])


def _user_defaults(platform: str, home: Path | None) -> tuple[Path, Path]:
    """platformdirs' config file and state dir for `home` (the current user's when None)."""
    if home is None and platform == sys.platform:
        return default_config_path(), default_state_dir()
    home = Path.home() if home is None else home
    if platform == "darwin":
        base = home / "Library" / "Application Support" / APP_NAME
        return base / "config.toml", base
    return home / ".config" / APP_NAME / "config.toml", home / ".local" / "state" / APP_NAME


def _writable(config: Config | None) -> list[Path]:
    """Folders the daemon writes besides its state dir: watches for move/delete, done_dir."""
    if config is None or config.after_upload is AfterUpload.KEEP:
        return []
    paths = [w.path for w in config.watches]
    if config.after_upload is AfterUpload.MOVE and config.done_dir is not None:
        paths.append(config.done_dir)
    return list(dict.fromkeys(paths))


def plan_install(
    *,
    system: bool,
    platform: str = sys.platform,
    executable: str | None = None,
    config: Config | None = None,
    home: Path | None = None,
    user: str | None = None,
) -> InstallPlan:
    """What install-service writes and runs.

    Args:
        config: the config the service will read (watch folders, after_upload, paths). None:
            --system reads /etc/mavi-uploader/config.toml if present; a user service reads what
            this user's CLI reads (env included), unless `home` is given (then: none).
        home: the user's home for user services (tests); default Path.home().
        user: the account a --system service runs as; default mavi-uploader, created for you.
    """
    if platform == "darwin" and system:
        raise InstallError(
            "--system is not supported on macOS: install-service without --system installs a"
            " LaunchAgent that runs as you whenever you are logged in"
        )
    if not platform.startswith(("linux", "darwin")):
        raise InstallError(f"install-service supports Linux (systemd) and macOS, not {platform}")
    if user is not None and not system:
        raise InstallError("--user NAME applies to --system only; a user service runs as you")
    argv = _command(executable)
    if system:
        if config is None and SYSTEM_CONFIG.is_file():
            config = load_config(config_path=str(SYSTEM_CONFIG), env={}, require_api_key=False)
        return _systemd_system(argv, config, user or SERVICE_USER)
    if config is None and home is None:
        config = load_config(require_api_key=False)
    config_file, state_dir = _user_defaults(platform, home)
    if config is not None:
        config_file, state_dir = config.config_file or config_file, config.state_dir
    start = config is not None and bool(config.watches)
    notes = [] if start else [f"create {config_file} with your [[watch]] folders (see README)"]
    if platform == "darwin":
        return _launchd(argv, config_file, state_dir, home or Path.home(), start, notes)
    return _systemd_user(argv, config_file, state_dir, home or Path.home(), start, notes)


def _systemd_system(argv: tuple[str, ...], config: Config | None, user: str) -> InstallPlan:
    if user != SERVICE_USER:
        try:
            pwd.getpwnam(user)
        except KeyError:
            raise InstallError(
                f"user {user} does not exist: create it, or leave out --user to run the service"
                f" as {SERVICE_USER} (created for you)"
            ) from None
    watches = [w.path for w in config.watches] if config else []
    writable, mode = _writable(config), config.after_upload.value if config else "keep"
    programs = [Path(a) for a in argv if os.path.isabs(a)]
    seen = [*watches, *writable, *programs]
    rw_block = [f"# after_upload = {mode}: the daemon writes these folders"] if writable else []
    rw_block += [f"ReadWritePaths={_sd_word(f'-{p}')}" for p in writable]
    if mode == "move":  # rename(2) never crosses mount points, and each path is a bind mount
        rw_block.append("# done_dir is a separate mount: a move there is a copy, then a delete")
    values = {
        "exec_start": " ".join(_sd_word(a, exec_line=True) for a in argv),
        "user": _check_text(user),
        "protect_home": "read-only" if any(_under(p, _HOMES) for p in seen) else "yes",
        "private_tmp": "no" if any(_under(p, _TMPS) for p in seen) else "yes",
        "read_write_paths": "\n".join(rw_block or [f"# after_upload = {mode}: all read-only"]),
    }
    files = [PlannedFile(SYSTEM_UNIT, render("mavi-uploader.service", values), 0o644)]
    commands: list[tuple[str, ...]] = []
    if user == SERVICE_USER:
        sysusers = render("mavi-uploader.sysusers", {"user": user})
        files.append(PlannedFile(SYSUSERS_FILE, sysusers, 0o644))
        commands.append(("systemd-sysusers", str(SYSUSERS_FILE)))
    commands += [("systemctl", "daemon-reload"), ("systemctl", "enable", SERVICE)]
    notes = [
        f"API key: put MAVI_API_KEY=... in {SYSTEM_ENV_FILE} (owner root, chmod 600: systemd"
        f" reads it before dropping privileges), or use an api_key_file only {user} can read"
    ]
    if config is None or not config.watches:
        notes.append(
            f"create {SYSTEM_CONFIG} with your [[watch]] folders (see README), run"
            " install-service --system again so ReadWritePaths= follows after_upload, then"
            f" systemctl start {SERVICE}"
        )
    else:
        commands.append(("systemctl", "restart", SERVICE))
        if config.config_file not in (None, SYSTEM_CONFIG):
            notes.append(f"the service reads {SYSTEM_CONFIG}: copy {config.config_file} there")
    if config is not None and user != "root":
        folders = ", ".join(map(str, dict.fromkeys([*watches, *writable])))
        rights = "rwX" if writable else "rX"
        notes.append(
            f"the service runs as {user}: it needs {rights} on {folders}"
            f" (e.g. setfacl -R -m u:{user}:{rights},d:u:{user}:{rights} FOLDER)"
        )
    if config is not None and config.done_dir is not None and mode == "move":
        if not config.done_dir.is_dir():  # a missing ReadWritePaths= folder stays read-only
            notes.append(f"create done_dir {config.done_dir}, writable by {user}, before start")
    if user != "root" and any(_under(p, _HOMES) for p in programs):
        notes.append(
            f"{argv[0]} is in a home directory, which {user} usually cannot enter: install"
            " mavi-uploader system-wide (e.g. a venv in /opt/mavi-uploader) and run this again"
        )
    notes.append(
        f"logs: journalctl -u {SERVICE} -f; reload the config: systemctl reload {SERVICE};"
        f" status: MAVI_UPLOADER_STATE_DIR={SYSTEM_STATE_DIR} mavi-uploader status"
    )
    return InstallPlan(tuple(files), tuple(commands), tuple(notes))


def _user_unit_paths(home: Path) -> tuple[Path, Path]:
    units = home / ".config" / "systemd" / "user"
    return units / SERVICE, units / "default.target.wants" / SERVICE


def _systemd_user(
    argv: tuple[str, ...], config_file: Path, state_dir: Path, home: Path, start: bool,
    notes: list[str],
) -> InstallPlan:  # fmt: skip
    values = {
        "exec_start": " ".join(_sd_word(a, exec_line=True) for a in argv),
        "config_file": _sd_inner(str(config_file)),
        "state_dir": _sd_inner(str(state_dir)),
    }
    unit = PlannedFile(
        _user_unit_paths(home)[0], render("mavi-uploader-user.service", values), 0o644
    )
    ctl = ("systemctl", "--user")
    commands = [(*ctl, "daemon-reload"), (*ctl, "enable", SERVICE)]
    if start:
        commands.append((*ctl, "restart", SERVICE))
    else:
        notes.append(f"then: systemctl --user start {SERVICE}")
    name = getpass.getuser()
    if not (Path("/var/lib/systemd/linger") / name).exists():
        notes.append(
            f"run `loginctl enable-linger {name}` once so the service starts at boot and keeps"
            " running after you log out; without it, it runs only while you are logged in"
        )
    notes.append(
        f"logs: journalctl --user -u {SERVICE} -f; reload the config:"
        f" systemctl --user reload {SERVICE}"
    )
    return InstallPlan((unit,), tuple(commands), tuple(notes))


def _launchd_paths(home: Path) -> tuple[Path, Path]:
    library = home / "Library"
    return library / "LaunchAgents" / f"{LABEL}.plist", library / "Logs" / APP_NAME


def _launchd(
    argv: tuple[str, ...], config_file: Path, state_dir: Path, home: Path, start: bool,
    notes: list[str],
) -> InstallPlan:  # fmt: skip
    plist, log_dir = _launchd_paths(home)
    xml = [xml_escape(_check_text(str(v))) for v in (config_file, state_dir, log_dir)]
    words = [f"\t\t<string>{xml_escape(_check_text(a))}</string>" for a in argv]
    values = dict(zip(("config_file", "state_dir", "log_dir"), xml, strict=True))
    agent = PlannedFile(
        plist, render(f"{LABEL}.plist", {**values, "program_arguments": "\n".join(words)}), 0o644
    )
    domain = f"gui/{os.getuid()}"
    commands = [
        ("launchctl", "bootout", f"{domain}/{LABEL}"),
        ("launchctl", "enable", f"{domain}/{LABEL}"),
    ]
    bootstrap = ("launchctl", "bootstrap", domain, str(plist))
    if start:
        commands.append(bootstrap)
    else:
        notes.append(f"then: {shlex.join(bootstrap)}")
    notes += [
        f"logs: {log_dir}/mavi-uploader.log and mavi-uploader.err.log; reload the config:"
        f" launchctl kill HUP {domain}/{LABEL}",
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
        kept = (
            f"kept: /etc/mavi-uploader (config, key), {SYSTEM_STATE_DIR} (journal) and the"
            f" {SERVICE_USER} user (userdel {SERVICE_USER} removes it)"
        )
    else:
        unit, wants = _user_unit_paths(home)
        remove, command = (unit, wants), ("systemctl", "--user", "disable", "--now", SERVICE)
        kept = "kept: your config and the state dir (the journal)"
    if not unit.exists():
        return InstallPlan((), (), (f"no service installed at {unit}", kept), remove=remove)
    return InstallPlan((), (command,), (kept,), remove=remove)


def describe(plan: InstallPlan) -> str:
    """The --dry-run text: every file with its full content, then the commands and notes."""
    out = [f"would create directory {d}" for d in plan.directories]
    for f in plan.files:
        out += [f"--- would write {f.path} (mode {f.mode:04o})", f.content.rstrip("\n"), "---"]
    out += [f"would run: {shlex.join(c)}" for c in plan.commands]
    out += [f"would remove {p}" for p in plan.remove]
    out += [f"note: {n}" for n in plan.notes]
    return "\n".join(out) + "\n"


def default_runner(command: Sequence[str]) -> int:
    """Run a command with the terminal as its stdout/stderr; its exit code."""
    return subprocess.run(list(command), check=False).returncode


def _systemd_booted() -> bool:
    return Path("/run/systemd/system").is_dir()  # what sd_booted() checks


def _write(planned: PlannedFile) -> None:
    """Atomically: a reader (systemd, launchd) never sees half a file."""
    planned.path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=planned.path.parent, prefix=f".{planned.path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(planned.content)
            os.fchmod(f.fileno(), planned.mode)
        os.replace(tmp, planned.path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def apply(
    plan: InstallPlan,
    *,
    run: Callable[[Sequence[str]], int] = default_runner,
    which: Callable[[str], str | None] = shutil.which,
    booted: Callable[[], bool] = _systemd_booted,
) -> list[str]:
    """Carry out `plan`; returns what was done and what the user must still do, in order."""
    messages: list[str] = []
    try:
        for directory in plan.directories:
            directory.mkdir(parents=True, exist_ok=True)
        for planned in plan.files:
            _write(planned)
            messages.append(f"wrote {planned.path}")
    except OSError as exc:
        hint = " (--system needs root: use sudo)" if isinstance(exc, PermissionError) else ""
        raise InstallError(f"cannot write {exc.filename}: {exc.strerror}{hint}") from None
    for i, command in enumerate(plan.commands):
        tool, rest = command[0], [shlex.join(c) for c in plan.commands[i:]]
        if which(tool) is None:
            problem = f"{tool} is not available here"
        elif tool == "systemctl" and not booted():
            problem = "systemd is not running here (no /run/systemd/system)"
        else:
            code = run(command)
            if code == 0 or command[:2] == ("launchctl", "bootout"):  # bootout: may not be loaded
                messages.append(f"ran {shlex.join(command)}")
                continue
            problem = f"`{shlex.join(command)}` failed (exit {code})"
        # Uninstall removes the files (and enable symlinks) itself: nothing is left to run.
        todo = "skipped" if plan.remove else "run this yourself"
        messages.append(f"{problem}: {todo}: {' && '.join(rest)}")
        break
    for path in plan.remove:
        try:
            if path.is_symlink() or path.exists():
                path.unlink()
                messages.append(f"removed {path}")
        except OSError as exc:
            raise InstallError(f"cannot remove {path}: {exc.strerror}") from None
    return messages + list(plan.notes)
