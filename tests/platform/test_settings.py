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
from app.config import MIN_SECRET_LENGTH, Settings, secret_key_weakness
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
