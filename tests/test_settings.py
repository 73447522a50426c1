"""Settings are validated at start (DESIGN §9): a bad value refuses to boot, naming it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from sts.cli import main
from sts.core.keys import KeyFileError, generate_key
from sts.core.secrets import HASH_KEY_FILE
from sts.core.settings import Settings, SettingsError
from sts.runtime import build_runtime


@pytest.fixture(autouse=True)
def _no_default_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run where no ``config/sts.toml`` exists, so only what a test passes is read."""
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_settings_when_nothing_configured_then_defaults_are_valid():
    settings = Settings.load(environ={})
    assert settings == Settings()
    assert settings.validate() is settings
    assert settings.env == "development" and not settings.is_production
    assert settings.token_endpoint == "http://127.0.0.1:8000/token"
    assert settings.token_ttl <= settings.max_token_ttl


def test_settings_when_file_and_env_then_env_overrides_file(tmp_path):
    config = write(
        tmp_path / "sts.toml",
        '[sts]\ntoken_ttl = 120\nmax_token_ttl = 900\nissuer = "https://file.example.test"\n'
        'keys_dir = "file-keys"\ndemo_registry = true\n',
    )
    environ = {
        "STS_TOKEN_TTL": "60",
        "STS_ISSUER": "https://env.example.test",
        "STS_DEMO_REGISTRY": "false",
        "STS_JWKS_FETCH_TIMEOUT": "1.5",
    }
    settings = Settings.load(environ=environ, config_file=config)
    assert settings.token_ttl == 60
    assert settings.max_token_ttl == 900
    assert settings.issuer == "https://env.example.test"
    assert settings.keys_dir == Path("file-keys")
    assert settings.demo_registry is False
    assert settings.jwks_fetch_timeout == 1.5


def test_settings_when_sts_config_file_env_then_that_file_is_read(tmp_path):
    config = write(tmp_path / "other.toml", "[sts]\nleeway = 10\n")
    settings = Settings.load(environ={"STS_CONFIG_FILE": str(config)})
    assert settings.leeway == 10


def test_settings_when_default_config_file_present_then_it_is_read(tmp_path):
    (tmp_path / "config").mkdir()
    write(tmp_path / "config" / "sts.toml", '[sts]\nlog_level = "DEBUG"\n')
    assert Settings.load(environ={}).log_level == "DEBUG"


def test_settings_when_overrides_given_then_they_beat_env():
    settings = Settings.load(environ={"STS_LEEWAY": "10"}, leeway=20)
    assert settings.leeway == 20


def test_settings_when_example_file_then_it_lists_every_setting_with_its_default():
    example = Path(__file__).resolve().parent.parent / "config" / "sts.example.toml"
    lines = example.read_text().splitlines()
    assert "[sts]" in lines
    commented = [m for line in lines if (m := re.match(r"^# ([a-z_]+) = .*$", line))]
    names = [m[1] for m in commented]
    assert sorted(names) == sorted(Settings.__dataclass_fields__)
    # Uncommented, the example is exactly the defaults.
    config = write(Path("example.toml"), "[sts]\n" + "\n".join(m[0][2:] for m in commented))
    assert Settings.load(environ={}, config_file=config) == Settings()


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"STS_ENV": "staging"}, "STS_ENV"),
        ({"STS_TOKEN_TTL": "five minutes"}, "STS_TOKEN_TTL"),
        ({"STS_TOKEN_TTL": "3.5"}, "STS_TOKEN_TTL"),
        ({"STS_TOKEN_TTL": "0"}, "STS_TOKEN_TTL"),
        ({"STS_TOKEN_TTL": "7200", "STS_MAX_TOKEN_TTL": "3600"}, "STS_TOKEN_TTL"),
        ({"STS_ENV": "production", "STS_ISSUER": "http://sts.example.test"}, "STS_ISSUER"),
        ({"STS_ISSUER": "sts.example.test"}, "STS_ISSUER"),
        ({"STS_ISSUER": "https://sts.example.test/?tenant=a"}, "STS_ISSUER"),
        ({"STS_DATABASE_URL": "mysql://db/sts"}, "STS_DATABASE_URL"),
        ({"STS_SIGNING_ALG": "HS256"}, "STS_SIGNING_ALG"),
        ({"STS_LEEWAY": "-1"}, "STS_LEEWAY"),
        ({"STS_LEEWAY": "301"}, "STS_LEEWAY"),
        ({"STS_MAX_CHAIN_DEPTH": "0"}, "STS_MAX_CHAIN_DEPTH"),
        ({"STS_JWKS_FETCH_TIMEOUT": "0"}, "STS_JWKS_FETCH_TIMEOUT"),
        ({"STS_JWKS_FETCH_TIMEOUT": "nan"}, "STS_JWKS_FETCH_TIMEOUT"),
        ({"STS_JWKS_FETCH_TIMEOUT": "inf"}, "STS_JWKS_FETCH_TIMEOUT"),
        ({"STS_LOG_LEVEL": "LOUD"}, "STS_LOG_LEVEL"),
        ({"STS_DEMO_REGISTRY": "maybe"}, "STS_DEMO_REGISTRY"),
        (
            {
                "STS_ENV": "production",
                "STS_ISSUER": "https://sts.example.test",
                "STS_DATABASE_URL": "postgresql+psycopg://db/sts",
                "STS_DEMO_REGISTRY": "true",
            },
            "STS_DEMO_REGISTRY",
        ),
        ({"STS_DATABSE_URL": "postgresql+psycopg://db/sts"}, "STS_DATABSE_URL"),
        ({"STS_VERIFIER_LEEWAY": "10"}, "STS_VERIFIER_LEEWAY"),
        ({"STS_CLIENT_ASSERTION_MAX_LIFETIME": "0"}, "STS_CLIENT_ASSERTION_MAX_LIFETIME"),
        (
            {"STS_ENV": "production", "STS_ISSUER": "https://sts.example.test"},
            "STS_ALLOW_SQLITE_IN_PRODUCTION",
        ),
    ],
)
def test_settings_when_bad_env_value_then_error_names_the_setting(environ, named):
    with pytest.raises(SettingsError, match=named):
        Settings.load(environ=environ)


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[sts]\ntoken_tll = 60\n", "token_tll"),
        ("[sts]\ntoken_ttl = 60.9\n", "STS_TOKEN_TTL"),
        ("[sts]\ntoken_ttl = true\n", "STS_TOKEN_TTL"),
        ("[sts]\ntoken_ttl = 600\nmax_token_ttl = 300\n", "STS_TOKEN_TTL"),
        ('[sts]\nenv = "production"\n', "STS_ISSUER"),
        ("leeway = 10\n[sts]\ntoken_ttl = 60\n", "leeway"),
        ("[sts]\n[sts.extra]\nx = 1\n", "extra"),
        ("sts = 5\n", r"\[sts\]"),
    ],
)
def test_settings_when_bad_value_in_file_then_error_names_the_setting(tmp_path, toml, named):
    config = write(tmp_path / "sts.toml", toml)
    with pytest.raises(SettingsError, match=named):
        Settings.load(environ={}, config_file=config)


def test_settings_when_file_is_not_toml_then_error_names_the_file(tmp_path):
    config = write(tmp_path / "broken.toml", "[sts\ntoken_ttl = \n")
    with pytest.raises(SettingsError, match=r"broken\.toml"):
        Settings.load(environ={}, config_file=config)


def test_settings_when_sts_config_file_missing_then_error_names_it(tmp_path):
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(SettingsError, match="STS_CONFIG_FILE"):
        Settings.load(environ={"STS_CONFIG_FILE": str(missing)})


def production(tmp_path: Path, keys_dir: Path) -> Settings:
    return Settings(
        env="production",
        issuer="https://sts.example.test",
        database_url=f"sqlite:///{tmp_path / 'sts.db'}",
        keys_dir=keys_dir,
        allow_sqlite_in_production=True,
    ).validate()


def test_settings_when_an_unknown_sts_variable_is_set_then_refused_naming_it() -> None:
    """A typo (``STS_DATABSE_URL``) must not silently fall back to the default database."""
    with pytest.raises(SettingsError) as refused:
        Settings.load(environ={"STS_DATABSE_URL": "postgresql+psycopg://db/sts"})
    assert str(refused.value) == "unknown setting in the environment: STS_DATABSE_URL"


def test_settings_when_test_and_config_variables_are_set_then_they_are_not_settings() -> None:
    environ = {"STS_TEST_PG_DB": "x", "STS_FUZZ_EXAMPLES": "9"}
    assert Settings.load(environ=environ) == Settings.load(environ={})


def test_settings_when_production_on_sqlite_then_only_with_the_explicit_opt_in() -> None:
    environ = {"STS_ENV": "production", "STS_ISSUER": "https://sts.example.test"}
    with pytest.raises(SettingsError, match="STS_ALLOW_SQLITE_IN_PRODUCTION=true"):
        Settings.load(environ=environ)
    opted_in = Settings.load(environ={**environ, "STS_ALLOW_SQLITE_IN_PRODUCTION": "true"})
    assert opted_in.is_production and opted_in.database_url.startswith("sqlite")


def test_build_runtime_when_production_and_key_directory_missing_then_clear_error(tmp_path):
    keys_dir = tmp_path / "no-keys"
    with pytest.raises(KeyFileError, match="key directory does not exist"):
        build_runtime(production(tmp_path, keys_dir))
    assert not keys_dir.exists()  # production never generates keys


def test_build_runtime_when_production_and_no_signing_key_then_clear_error(tmp_path):
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    with pytest.raises(KeyFileError, match="sts keys generate"):
        build_runtime(production(tmp_path, keys_dir))
    assert list(keys_dir.iterdir()) == []


def test_build_runtime_when_production_and_hashing_key_missing_then_clear_error(tmp_path):
    keys_dir = tmp_path / "keys"
    generate_key(keys_dir, "ES256")
    with pytest.raises(KeyFileError, match="credential hashing key missing"):
        build_runtime(production(tmp_path, keys_dir))
    assert not (keys_dir / HASH_KEY_FILE).exists()


def test_build_runtime_when_development_and_keys_missing_then_generated(tmp_path):
    keys_dir = tmp_path / "keys"
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'sts.db'}", keys_dir=keys_dir)
    rt = build_runtime(settings)
    try:
        assert rt.keys.ring.signing_key(rt.clock.now()).alg == "ES256"
        assert (keys_dir / HASH_KEY_FILE).stat().st_mode & 0o777 == 0o600
    finally:
        rt.close()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"STS_TOKEN_TTL": "abc"}, "STS_TOKEN_TTL"),
        ({"STS_ENV": "staging"}, "STS_ENV"),
        ({"STS_CONFIG_FILE": "missing.toml"}, "STS_CONFIG_FILE"),
    ],
)
def test_cli_db_upgrade_when_bad_setting_then_exit_nonzero_naming_it(tmp_path, env, named):
    database = tmp_path / "sts.db"
    result = CliRunner().invoke(
        main, ["db", "upgrade"], env={"STS_DATABASE_URL": f"sqlite:///{database}", **env}
    )
    assert result.exit_code != 0
    assert named in result.stderr
    assert "configuration error" in result.stderr
    assert "Traceback" not in result.output
    assert not database.exists()
