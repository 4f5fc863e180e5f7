"""ReadSettings (the read-only open's LEDGER_* reader) agrees with Settings on what it reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.errors import ConfigError
from ledger.read_settings import FIELDS, ReadSettings
from ledger.settings import Settings

VALUES = {
    "home": ["/srv/ledger", "rel/home", "", " spaced ", "~/x", "é/ü"],
    "database_url": ["sqlite:////tmp/x.db", "postgresql+psycopg://u:p@h/db", "", "junk"],
    "origin": ["example.com/log", "", " x "],
    "sqlite_busy_timeout": [
        "5", " 5 ", "0.5", "1e3", "1_0", "+3", "inf", "1e400", "\t7\n",
        "", "0", "-1", "nan", "-inf", "abc", "0x10", "true", "1__0", "_1", "1,5",
        "\uff15", "\u0663",  # fullwidth five, Arabic-Indic three: float() takes them, pydantic not
    ],
    "facts_file": ["facts.yaml", "/abs/facts.yaml", ""],
    "conduct_config": ["conduct.yaml", "/abs/conduct.yaml", ""],
}  # fmt: skip


def _settings_or_error(env: dict[str, str], **overrides: object) -> dict[str, object] | str:
    try:
        settings = Settings(_env_file=None, **overrides)  # type: ignore[call-arg]  # pydantic-settings' init-only option
    except ValueError:  # pydantic's ValidationError
        return "error"
    return {name: getattr(settings, name) for name in FIELDS} | {
        "url": settings.resolved_database_url()
    }


def _read_or_error(env: dict[str, str], **overrides: object) -> dict[str, object] | str:
    try:
        read = ReadSettings.from_env(env, **overrides)  # type: ignore[arg-type]  # test values
    except ConfigError:
        return "error"
    return {name: getattr(read, name) for name in FIELDS} | {"url": read.resolved_database_url()}


def test_fields_are_settings_fields() -> None:
    assert set(FIELDS) <= set(Settings.model_fields)
    defaults = ReadSettings()
    for name in FIELDS:
        assert getattr(defaults, name) == Settings.model_fields[name].default, name


@pytest.mark.parametrize(
    ("name", "value"), [(n, v) for n, values in VALUES.items() for v in values]
)
def test_agrees_with_settings(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    env = {f"LEDGER_{name.upper()}": value}
    for key, val in env.items():
        monkeypatch.setenv(key, val)
    expected = _settings_or_error(env)
    assert _read_or_error(env) == expected


def test_agrees_with_no_environment() -> None:
    assert _read_or_error({}) == _settings_or_error({})


def test_names_are_case_insensitive_as_in_pydantic_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"ledger_home": "/lower", "Ledger_Origin": "mixed.example/log"}
    for key, val in env.items():
        monkeypatch.setenv(key, val)
    assert _read_or_error(env) == _settings_or_error(env)
    assert ReadSettings.from_env(env).home == Path("/lower")


def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"LEDGER_HOME": "/env-home", "LEDGER_DATABASE_URL": "sqlite:////env.db"}
    for key, val in env.items():
        monkeypatch.setenv(key, val)
    overrides = {"home": Path("/cli-home"), "database_url": "sqlite:////cli.db"}
    assert _read_or_error(env, **overrides) == _settings_or_error(env, **overrides)
    assert ReadSettings.from_env(env, **overrides).resolved_database_url() == "sqlite:////cli.db"


def test_unread_settings_do_not_fail_a_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_BATCH_SIZE", "not a number")
    with pytest.raises(ValueError, match="batch_size"):
        Settings()
    assert ReadSettings.from_env().home == Path(".ledger")


def test_a_read_only_open_imports_no_pydantic_settings_sqlmodel_or_orm(tmp_path: Path) -> None:
    """``ledger.open(..., read_only=True)`` reads with ReadSettings and the Core tables."""
    import subprocess
    import sys

    import ledger

    with ledger.open(home=tmp_path / "home") as lg:
        lg.append({"provider": "openai", "purpose": "evaluate"})
    heavy = ("pydantic_settings", "sqlmodel", "sqlalchemy.orm", "ledger.log.tables", "alembic")
    code = (
        "import sys, ledger\n"
        f"with ledger.open(home={str(tmp_path / 'home')!r}, read_only=True) as lg:\n"
        "    assert lg.verify().ok and lg.size == 1\n"
        f"heavy = {heavy!r}\n"
        "print(sorted(m for m in sys.modules if m in heavy or m.startswith(heavy)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
