"""Fleet mode's config keys: journal_url, host_id, host_timeout_seconds, [[watch]] share."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from mavi_uploader.config import fleet
from mavi_uploader.config import settings as cfg
from mavi_uploader.config.model import Config
from mavi_uploader.config.settings import ConfigError, load_config

KEY = "mk-test-Sup3rSecretKeyValue-9f8e7d"
ENV = {"MAVI_API_KEY": KEY}
URL = "postgresql://mavi@db.example:5432/uploads"
SECRET_URL = "postgresql://mavi:Hunter2-pass@db.example:5432/uploads"


@pytest.fixture(autouse=True)
def isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never read the real user config or state dir; run from a scratch cwd."""
    monkeypatch.setattr(cfg, "default_config_path", lambda: tmp_path / "none" / "config.toml")
    monkeypatch.setattr(cfg, "default_state_dir", lambda: tmp_path / "default-state")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path | None = None, env: dict[str, str] | None = None, **kw: Any) -> Config:
    return load_config(
        config_path=str(path) if path else None, env=ENV if env is None else env, **kw
    )


def error(path: Path | None = None, env: dict[str, str] | None = None, **kw: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load(path, env, **kw)
    return str(info.value)


def watches(*tables: str) -> str:
    return "".join(f"[[watch]]\n{t}\n" for t in tables)


# --- defaults and a fleet file ------------------------------------------------------------


def test_without_fleet_keys_the_journal_is_sqlite() -> None:
    c = load()
    assert c.journal_url is None
    assert c.host_id == socket.gethostname()
    assert c.host_timeout_seconds == 30.0


def test_a_fleet_file_is_parsed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'journal_url = "{URL}"\nhost_id = "edit-bay-3"\nhost_timeout_seconds = 12\n'
        + watches('path = "/mnt/studio"\nshare = "studio-nas"', 'path = "/home/me/own"'),
    )
    c = load(path)
    assert (c.journal_url, c.host_id, c.host_timeout_seconds) == (URL, "edit-bay-3", 12.0)
    assert [(w.path, w.share) for w in c.watches] == [
        (Path("/mnt/studio"), "studio-nas"), (Path("/home/me/own"), None),
    ]  # fmt: skip
    assert c.warnings == ()


@pytest.mark.parametrize("url", [
    "postgres://h/db", "POSTGRESQL://H/DB", "postgresql:///db", "postgresql://",
    "postgresql://u:p%40ss@[::1]:5432/db?sslmode=require", "postgresql://h1:5432,h2:5433/db",
])  # fmt: skip
def test_postgresql_urls_libpq_takes_are_accepted(url: str) -> None:
    assert load(env={**ENV, "MAVI_UPLOADER_JOURNAL_URL": f" {url} "}).journal_url == url


def test_a_port_that_is_not_a_number_is_refused() -> None:
    for url in ("postgresql://h:x/db", "postgresql://h1:5432,h2:70000/db", "postgresql://[::1/db"):
        assert "is not valid" in error(env={**ENV, "MAVI_UPLOADER_JOURNAL_URL": url})


# --- precedence: flag > env > file > default ----------------------------------------------


def test_journal_url_precedence(tmp_path: Path) -> None:
    path = write(tmp_path, 'journal_url = "postgresql://file/db"\n')
    env = {**ENV, "MAVI_UPLOADER_JOURNAL_URL": "postgresql://env/db"}
    assert load(path).journal_url == "postgresql://file/db"
    assert load(path, env).journal_url == "postgresql://env/db"
    assert load(path, env, journal_url="postgresql://flag/db").journal_url == "postgresql://flag/db"
    assert load(path, {**ENV, "MAVI_UPLOADER_JOURNAL_URL": "  "}).journal_url == (
        "postgresql://file/db"
    )  # a blank variable is unset
    assert load(write(tmp_path, 'journal_url = ""\n')).journal_url is None  # as state_dir = ""


def test_host_id_precedence(tmp_path: Path) -> None:
    path = write(tmp_path, f'journal_url = "{URL}"\nhost_id = "from-file"\n')
    env = {**ENV, "MAVI_UPLOADER_HOST_ID": " from-env\n"}
    assert load(path).host_id == "from-file"
    assert load(path, env).host_id == "from-env"  # surrounding blanks dropped, as for others
    assert load(path, env, host_id="from-flag").host_id == "from-flag"
    assert load(path, {**ENV, "MAVI_UPLOADER_HOST_ID": ""}).host_id == "from-file"


# --- wrong values: file, key, bad value and fix --------------------------------------------

BAD_VALUES = [
    ('journal_url = "mysql://h/db"', 'journal_url = "mysql://h/db"', "a postgresql:// or"),
    ('journal_url = "db.example:5432"', 'journal_url = "db.example:5432"', "postgres:// URL"),
    ('journal_url = "postgresql://h:99999/db"', "journal_url = ", "user@host:5432/db"),
    ('journal_url = "postgresql://h/my db"', "journal_url = ", "postgresql://user@host:5432/db"),
    ('journal_url = "/var/lib/mavi.sqlite"', "journal_url = ", "leave journal_url out"),
    ("journal_url = 5", "journal_url = 5", "postgresql://user@host:5432/db"),
    ('host_id = ""', 'host_id = ""', "1 to 64 printable characters without spaces"),
    ('host_id = "edit bay"', 'host_id = "edit bay"', "without spaces"),
    ('host_id = "tab\\there"', 'host_id = "tab\\there"', "printable"),
    (f'host_id = "{"x" * 65}"', "host_id = ", "1 to 64"),
    ("host_id = 3", "host_id = 3", "such as \"edit-bay-3\""),
    ("host_timeout_seconds = 0", "host_timeout_seconds = 0", "seconds > 0"),
    ("host_timeout_seconds = -5", "host_timeout_seconds = -5", "seconds > 0"),
    ('host_timeout_seconds = "30"', 'host_timeout_seconds = "30"', "seconds > 0"),
    ('[[watch]]\npath = "/a"\nshare = ""', '[[watch]] #1 share = ""', '"studio-nas"'),
    ('[[watch]]\npath = "/a"\nshare = "a b"', '[[watch]] #1 share = "a b"', 'digits, "-", "_"'),
    ('[[watch]]\npath = "/a"\nshare = "a/b"', '[[watch]] #1 share = "a/b"', "letters"),
    ('[[watch]]\npath = "/a"\nshare = "Ateliér"', "share = ", "letters, digits"),
    ('[[watch]]\npath = "/a"\nshare = 1', "[[watch]] #1 share = 1", "a name of letters"),
]  # fmt: skip


@pytest.mark.parametrize(("toml", "shown", "fix"), BAD_VALUES)
def test_bad_value_names_file_key_value_and_fix(
    tmp_path: Path, toml: str, shown: str, fix: str
) -> None:
    path = write(tmp_path, f'journal_url = "{URL}"\n{toml}\n')
    if toml.startswith("journal_url"):
        path = write(tmp_path, toml + "\n")
    msg = error(path)
    assert msg.startswith(f"{path}: "), msg
    assert f"{shown}" in msg and " is not valid: expected " in msg, msg
    assert fix in msg, msg


def test_bad_env_values_name_the_variable() -> None:
    msg = error(env={**ENV, "MAVI_UPLOADER_JOURNAL_URL": "sqlite:///x.db"})
    assert 'MAVI_UPLOADER_JOURNAL_URL (environment) = "sqlite:///x.db" is not valid' in msg
    assert "postgresql://user@host:5432/db" in msg
    msg = error(env={**ENV, "MAVI_UPLOADER_HOST_ID": "two words"})
    assert 'MAVI_UPLOADER_HOST_ID (environment) = "two words" is not valid' in msg


def test_bad_flag_values_name_the_command_line() -> None:
    assert "journal url (from the command line)" in error(journal_url="http://x")
    assert "host id (from the command line)" in error(host_id="a b")


def test_file_values_are_checked_even_when_overridden(tmp_path: Path) -> None:
    path = write(tmp_path, 'journal_url = "mysql://x/db"\nhost_id = "a b"\n')
    env = {**ENV, "MAVI_UPLOADER_JOURNAL_URL": URL, "MAVI_UPLOADER_HOST_ID": "ok"}
    assert "journal_url" in error(path, env)
    path = write(tmp_path, 'host_id = "a b"\n')
    assert "host_id" in error(path, env)


@pytest.mark.parametrize("name", ["", "x" * 65, "has space"])
def test_an_unusable_host_name_needs_host_id_only_in_fleet_mode(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: name)
    assert load().host_id == name  # one host never uses its id
    msg = error(env={**ENV, "MAVI_UPLOADER_JOURNAL_URL": URL})
    assert "this host's name" in msg and "cannot be its host_id in the fleet" in msg
    assert "set host_id in the config file, or MAVI_UPLOADER_HOST_ID" in msg
    fixed = {**ENV, "MAVI_UPLOADER_JOURNAL_URL": URL, "MAVI_UPLOADER_HOST_ID": "bay-1"}
    assert load(env=fixed).host_id == "bay-1"


def test_host_id_takes_64_printable_characters() -> None:
    name = "Ré-7_" + "x" * 59
    assert load(env={**ENV, "MAVI_UPLOADER_HOST_ID": name}).host_id == name


# --- shares ------------------------------------------------------------------------------


def test_share_needs_a_journal_url(tmp_path: Path) -> None:
    path = write(tmp_path, watches('path = "/mnt/a"\nshare = "studio"'))
    msg = error(path)
    assert msg.startswith(f'{path}: [[watch]] #1 share = "studio" needs journal_url: ')
    assert "only means something in fleet mode" in msg
    assert 'set journal_url = "postgresql://user@host:5432/db"' in msg
    assert "MAVI_UPLOADER_JOURNAL_URL" in msg and "or remove share" in msg
    env = {**ENV, "MAVI_UPLOADER_JOURNAL_URL": URL}
    assert load(path, env).watches[0].share == "studio"  # the URL may come from anywhere


def test_one_share_at_two_paths_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'journal_url = "{URL}"\n'
        + watches(
            'path = "/mnt/a"\nshare = "studio"', 'path = "/b"', 'path = "/c"\nshare = "studio"'
        ),
    )
    msg = error(path)
    assert msg.startswith(f"{path}: [[watch]] #1 (/mnt/a) and [[watch]] #3 (/c)")
    assert 'both have share = "studio"' in msg and "one place per host" in msg
    assert "give each folder its own share name" in msg


def test_two_shares_and_own_folders_side_by_side(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'journal_url = "{URL}"\n'
        + watches('path = "/a"\nshare = "one"', 'path = "/b"\nshare = "two"', 'path = "/c"'),
    )
    assert [w.share for w in load(path).watches] == ["one", "two", None]


def test_file_shares_are_checked_even_when_watch_flags_replace_them(tmp_path: Path) -> None:
    path = write(tmp_path, watches('path = "/a"\nshare = "studio"'))
    assert "needs journal_url" in error(path, ENV, watch_dirs=["/elsewhere"])
    path = write(tmp_path, f'journal_url = "{URL}"\n' + watches('path = "/a"\nshare = "s"'))
    c = load(path, ENV, watch_dirs=["/elsewhere"])
    assert [(w.path, w.share) for w in c.watches] == [(Path("/elsewhere"), None)]


def test_fleet_keys_without_journal_url_are_ignored_with_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, 'host_id = "bay-1"\nhost_timeout_seconds = 10\n')
    c = load(path)
    assert c.warnings == (
        f"{path}: host_id is ignored: it is only used with journal_url (fleet mode)",
        f"{path}: host_timeout_seconds is ignored: it is only used with journal_url (fleet mode)",
    )
    assert load(path, {**ENV, "MAVI_UPLOADER_JOURNAL_URL": URL}).warnings == ()


# --- the URL's password is never shown -----------------------------------------------------


def test_password_is_not_in_repr_but_is_a_secret(tmp_path: Path) -> None:
    c = load(env={**ENV, "MAVI_UPLOADER_JOURNAL_URL": SECRET_URL})
    assert c.journal_url == SECRET_URL
    assert "Hunter2-pass" not in repr(c)
    assert c.secrets == (KEY, "Hunter2-pass")
    assert load().secrets == (KEY,)


@pytest.mark.parametrize(
    ("toml", "env_url"),
    [
        ('journal_url = "mysql://mavi:Hunter2-pass@db/uploads"', None),
        ('journal_url = "postgresql://mavi:Hunter2 pass@db/uploads"', None),  # the space
        ('journal_url = "postgresql://mavi:Hunter2-pass@db:port/uploads"', None),
        ('journal_url = "postgresql://db/uploads?password=Hunter2-pass&x=y y"', None),
        ('api_base = "postgresql://mavi:Hunter2-pass@db/uploads"', None),  # pasted elsewhere
        ("", "postgresql://mavi:Hunter2-pass@db:port/uploads"),
        ('journal_url = "mysql://mavi:Hunter2-pass@db/x"', SECRET_URL),
    ],
)
def test_errors_never_show_the_password(tmp_path: Path, toml: str, env_url: str | None) -> None:
    env = {**ENV, "MAVI_UPLOADER_JOURNAL_URL": env_url} if env_url else ENV
    msg = error(write(tmp_path, toml + "\n"), env)
    assert "Hunter2" not in msg
    assert "***" in msg


def test_a_password_like_the_scheme_does_not_garble_the_message(tmp_path: Path) -> None:
    path = write(tmp_path, 'journal_url = "postgresq://postgres:postgres@db/x"\n')
    msg = error(path)
    assert 'journal_url = "postgresq://postgres:***@db/x" is not valid' in msg
    assert "expected a postgresql:// or postgres:// URL such as postgresql://user@host" in msg


@pytest.mark.parametrize(
    ("url", "shown", "secrets"),
    [
        (URL, URL, []),
        (SECRET_URL, "postgresql://mavi:***@db.example:5432/uploads", ["Hunter2-pass"]),
        ("postgres://u:p%40ss@h/db", "postgres://u:***@h/db", ["p%40ss", "p@ss"]),
        ("postgresql://h/db?ssl=on&password=pw", "postgresql://h/db?ssl=on&password=***", ["pw"]),
        ("postgresql://u:@h/db", "postgresql://u:***@h/db", []),
    ],
)  # fmt: skip
def test_shown_url_and_url_secrets(url: str, shown: str, secrets: list[str]) -> None:
    assert fleet.shown_url(url) == shown
    assert fleet.url_secrets(url) == secrets
