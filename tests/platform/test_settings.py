"""Settings: SECRET_KEY rules per environment, and the development key kept in ./.data/."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

import app.config as config
from app.config import MIN_SECRET_LENGTH, Settings, secret_key_weakness, unknown_settings
from tests.support.paths import REPO

STRONG = "Zq3v-Xk9Lw_2Rt7Bn4Hs8Pm1Dc6Jf0Yg5"  # 33 characters, 33 distinct: accepted everywhere


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory without .env or .data, and no SECRET_KEY/ENVIRONMENT in the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    return tmp_path


@pytest.mark.parametrize("environment", ["test", "staging", "production"])
def test_missing_secret_key_outside_development_refuses_to_start(clean_env, environment):
    with pytest.raises(ValidationError) as excinfo:
        Settings(environment=environment)
    message = str(excinfo.value)
    assert "SECRET_KEY must be set to at least 32 characters" in message
    assert "ENVIRONMENT=development" in message
    assert not (clean_env / ".data").exists()


@pytest.mark.parametrize("environment", ["production", "development"])
def test_short_secret_key_refuses_to_start(clean_env, environment):
    with pytest.raises(ValidationError, match="SECRET_KEY must be set to at least 32 characters"):
        Settings(environment=environment, secret_key="k" * (MIN_SECRET_LENGTH - 1))


def test_a_random_secret_key_of_32_characters_is_accepted(clean_env):
    key = STRONG[:MIN_SECRET_LENGTH]
    assert Settings(environment="production", secret_key=key).secret_key == key


@pytest.mark.parametrize("environment", ["staging", "production"])
@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("REPLACE_ME_WITH_AT_LEAST_32_RANDOM_CHARACTERS", "looks like a placeholder"),  # kubernetes/secret.yaml
        ("changeme-changeme-changeme-changeme", "looks like a placeholder"),
        ("my-super-secret-signing-key-for-prod-2024", "looks like a placeholder"),
        ("k" * 64, "one short pattern repeated"),
        ("0123456789" * 4, "one short pattern repeated"),
        ("aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd", "too little entropy"),
    ],
)
def test_a_placeholder_or_low_entropy_key_refuses_to_start(clean_env, environment, key, reason):
    with pytest.raises(ValidationError, match=reason) as excinfo:
        Settings(environment=environment, secret_key=key)
    assert "token_urlsafe" in str(excinfo.value)  # says what to do


def test_a_generated_key_is_never_refused(clean_env):
    for _ in range(2000):
        for key in (secrets.token_urlsafe(48), secrets.token_hex(32), secrets.token_urlsafe(24)):
            assert secret_key_weakness(key) is None, key


def test_test_and_development_accept_a_weak_key_of_the_right_length(clean_env):
    assert Settings(environment="test", secret_key="k" * 40).secret_key == "k" * 40
    assert Settings(environment="development", secret_key="k" * 40).secret_key == "k" * 40


def test_secret_key_and_environment_are_read_from_the_environment(clean_env, monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", STRONG)
    settings = Settings()
    assert settings.environment == "production"
    assert settings.secret_key == STRONG


def test_secret_key_is_read_from_dotenv(clean_env):
    (clean_env / ".env").write_text("ENVIRONMENT=production\nSECRET_KEY=" + STRONG + "\n")
    assert Settings().secret_key == STRONG


@pytest.mark.subprocess
def test_service_refuses_to_start_in_production_without_secret_key(clean_env):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ENVIRONMENT")}
    env.update(ENVIRONMENT="production", PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-c", "import app.main"], cwd=clean_env, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set to at least 32 characters" in result.stderr


def test_development_generates_a_key_once_and_keeps_it_in_dot_data(clean_env):
    first = Settings(environment="development")
    assert len(first.secret_key) >= MIN_SECRET_LENGTH
    key_file = clean_env / ".data" / "secret_key"
    assert key_file.read_text().strip() == first.secret_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # A restart reads the same key back, so issued tokens stay valid.
    assert Settings(environment="development").secret_key == first.secret_key
    assert Settings().secret_key == first.secret_key  # development is the default


def test_development_key_differs_per_checkout(clean_env, tmp_path_factory):
    first = Settings(environment="development").secret_key
    os.chdir(tmp_path_factory.mktemp("other-checkout"))
    assert Settings(environment="development").secret_key != first


def test_development_uses_an_explicit_secret_key_and_writes_nothing(clean_env):
    settings = Settings(environment="development", secret_key="x" * 40)
    assert settings.secret_key == "x" * 40
    assert not (clean_env / ".data").exists()


def test_development_key_file_that_is_too_short_is_replaced(clean_env):
    (clean_env / ".data").mkdir()
    (clean_env / ".data" / "secret_key").write_text("short")
    key = Settings(environment="development").secret_key
    assert len(key) >= MIN_SECRET_LENGTH
    assert (clean_env / ".data" / "secret_key").read_text().strip() == key


def test_processes_starting_together_share_one_development_key(clean_env, monkeypatch):
    """`make run` starts the API and the worker at once: they must not each keep their own key."""
    starters = 4
    all_generated = threading.Barrier(starters, timeout=10)
    generate = config.secrets.token_urlsafe

    def generate_after_everyone_looked(nbytes: int) -> str:
        key = generate(nbytes)
        all_generated.wait()  # every starter found no key file before any writes one
        return key

    monkeypatch.setattr(config.secrets, "token_urlsafe", generate_after_everyone_looked)
    keys: list[str] = []
    threads = [
        threading.Thread(target=lambda: keys.append(Settings(environment="development").secret_key))
        for _ in range(starters)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == starters
    assert len(set(keys)) == 1
    assert (clean_env / ".data" / "secret_key").read_text().strip() == keys[0]


# --- the earlier FastAPI/Redis/Huey KV store's settings (seed 003) ------------------------------


def test_the_earlier_redis_parts_make_the_redis_urls(clean_env):
    settings = Settings(
        redis_host="db.internal", redis_port=6390, redis_db=2, redis_password="p@ss:word", redis_huey_port=6391
    )
    assert settings.redis_url == "redis://:p%40ss%3Aword@db.internal:6390/2"
    assert settings.huey_redis_url == "redis://127.0.0.1:6391/0"
    assert settings.data_redis_given and settings.queue_redis_given
    assert not Settings().data_redis_given


def test_the_earlier_names_of_our_settings_are_read_from_dotenv(clean_env):
    (clean_env / ".env").write_text(
        "API_V1_PREFIX=/v1\nMAX_KEY_SIZE=128\nMAX_VALUE_SIZE=4096\nREDIS_SOCKET_CONNECT_TIMEOUT=7\n"
        "DEFAULT_TTL=3600\nENABLE_METRICS=false\nDEBUG=true\nREDIS_HOST=cache\nREDIS_PORT=6400\n"
    )
    settings = Settings()
    assert (settings.api_prefix, settings.max_key_bytes, settings.max_value_bytes) == ("/v1", 128, 4096)
    assert settings.redis_connect_timeout == 7.0
    assert (settings.default_ttl, settings.enable_metrics, settings.log_level) == (3600, False, "DEBUG")
    assert settings.redis_url == "redis://cache:6400/0"


def test_debug_does_not_override_an_explicit_log_level(clean_env):
    assert Settings(debug=True, log_level="WARNING").log_level == "WARNING"


def test_the_default_value_limit_is_two_mib(clean_env):
    assert Settings().max_value_bytes == 2 * 1024 * 1024


@pytest.mark.parametrize(
    ("given", "names"),
    [
        ({"redis_url": "redis://a:6379/0", "redis_host": "b"}, ("REDIS_URL", "REDIS_HOST")),
        ({"huey_redis_url": "redis://q:6380/0", "redis_huey_port": 6399}, ("HUEY_REDIS_URL", "REDIS_HUEY_HOST")),
        ({"api_prefix": "/x", "api_v1_prefix": "/y"}, ("API_V1_PREFIX", "API_PREFIX")),
        ({"max_value_bytes": 10, "max_value_size": 20}, ("MAX_VALUE_SIZE", "MAX_VALUE_BYTES")),
    ],
)
def test_a_url_and_its_parts_or_two_names_that_disagree_refuse_to_start(clean_env, given, names):
    with pytest.raises(ValidationError) as excinfo:
        Settings(**given)
    for name in names:
        assert name in str(excinfo.value)


def test_agreeing_url_and_parts_start(clean_env):
    settings = Settings(redis_url="redis://cache:6400/0", redis_host="cache", redis_port=6400)
    assert settings.redis_url == "redis://cache:6400/0"


def test_a_refused_setting_never_prints_a_password_or_the_secret_key(clean_env):
    with pytest.raises(ValidationError) as excinfo:
        Settings(redis_url="redis://:xyzzy42@a:6379/0", redis_host="b", redis_password="hunter2-secret")
    assert "hunter2" not in str(excinfo.value) and "xyzzy42" not in str(excinfo.value)
    key = "my-super-secret-signing-key-for-prod-2024"
    with pytest.raises(ValidationError) as excinfo:
        Settings(environment="production", secret_key=key)
    assert "prod-2024" not in str(excinfo.value)


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_the_earlier_stores_placeholder_secret_is_refused(clean_env, environment):
    with pytest.raises(ValidationError, match="looks like a placeholder"):
        Settings(environment=environment, secret_key="your-secret-key-at-least-32-characters-long")


def test_unknown_variables_that_look_like_settings_are_named_with_a_suggestion(clean_env):
    (clean_env / ".env").write_text("QUOTA_MAX_KEY=5\n")
    environ = {"MAX_VALUE_BYTE": "1", "PATH": "/bin", "REDIS_URL": "redis://x", "HOST": "0.0.0.0", "REDIS_HOST": "h"}
    assert unknown_settings(environ) == [
        "MAX_VALUE_BYTE (did you mean MAX_VALUE_BYTES?)",
        "QUOTA_MAX_KEY (did you mean QUOTA_MAX_KEYS?)",
    ]


def test_the_api_warns_at_start_up_about_an_unknown_setting(clean_env, monkeypatch, capsys):
    import app.main as main

    monkeypatch.setenv("RATE_LIMIT_PER_SECOND_X", "5")
    monkeypatch.setattr(main, "get_settings", lambda: Settings(log_level="WARNING", log_format="json"))
    main.create_app()
    lines = [line for line in capsys.readouterr().out.splitlines() if "RATE_LIMIT_PER_SECOND_X" in line]
    assert len(lines) == 1 and "did you mean RATE_LIMIT_PER_SECOND?" in lines[0] and "WARNING" in lines[0]
