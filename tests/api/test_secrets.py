"""Secrets (issue 16): provider credentials read from where their tools keep them, in a fake
HOME; delivered to an env's workers as owner-only files plus variables, read there by AWS's and
Hugging Face's own clients; removed with the env; never shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import remote_objects as ro
from helpers import SECRET_VALUES

import rhzmq as rh

V = SECRET_VALUES
PROVIDER_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "HF_TOKEN",
    "HF_HOME",
    "HF_TOKEN_PATH",
    "GH_TOKEN",
    "GITHUB_TOKEN",
    "GH_CONFIG_DIR",
    "LAMBDA_API_KEY",
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME holding each provider's credential files, as their own tools write them."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(
        f"[default]\naws_access_key_id = {V['aws_key']}\naws_secret_access_key = {V['aws_secret']}\n"
    )
    (home / ".aws" / "config").write_text("[default]\nregion = eu-west-3\n")
    gcloud = home / ".config" / "gcloud"
    gcloud.mkdir(parents=True)
    (gcloud / "application_default_credentials.json").write_text(
        json.dumps({"type": "authorized_user", "client_id": "c", "refresh_token": "r"})
    )
    (home / ".cache" / "huggingface").mkdir(parents=True)
    (home / ".cache" / "huggingface" / "token").write_text(V["hf"] + "\n")
    (home / ".config" / "gh").mkdir(parents=True)
    (home / ".config" / "gh" / "hosts.yml").write_text(
        f"github.com:\n    user: ada\n    oauth_token: {V['gh']}\n    git_protocol: ssh\n"
    )
    (home / ".lambda_cloud").mkdir()
    (home / ".lambda_cloud" / "lambda_keys").write_text(f"api_key = {V['lambda']}\n")
    (home / ".ssh").mkdir(mode=0o700)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / ".ssh" / "id_ed25519")],
        check=True,
    )
    monkeypatch.setenv("HOME", str(home))
    for name in PROVIDER_VARS:
        monkeypatch.delenv(name, raising=False)
    return home


def test_provider_secrets_read_their_tools_places(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws = rh.provider_secret("aws")
    assert aws.values == {
        "access_key_id": V["aws_key"],
        "secret_access_key": V["aws_secret"],
        "region": "eu-west-3",
    }
    assert json.loads(rh.provider_secret("gcp").values["credentials_json"])["client_id"] == "c"
    assert rh.provider_secret("huggingface").values == {"token": V["hf"]}
    assert rh.provider_secret("github").values == {"token": V["gh"]}
    assert rh.provider_secret("lambda").values == {"api_key": V["lambda"]}
    ssh = rh.provider_secret("ssh").values
    assert ssh["key_name"] == "id_ed25519" and "PRIVATE KEY" in ssh["private_key"]
    # The variables win over the files, as in the providers' own tools.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMTHEENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-environment")
    assert rh.provider_secret("aws").values["access_key_id"] == "AKIAFROMTHEENVIRONMENT"
    # Nothing there: the error says where it looked and what to do.
    with pytest.raises(rh.SecretError, match=r"AZURE_CLIENT_ID.*AZURE_TENANT_ID"):
        rh.provider_secret("azure")
    (home / ".cache" / "huggingface" / "token").unlink()
    with pytest.raises(rh.SecretError, match="huggingface-cli login"):
        rh.provider_secret("huggingface")
    with pytest.raises(rh.SecretError, match="unknown provider 'awz'"):
        rh.provider_secret("awz")
    # Never displayed.
    for shown in (repr(aws), str(aws), repr(rh.env(name="e", secrets=[aws]))):
        assert V["aws_key"] not in shown and V["aws_secret"] not in shown
    assert "access_key_id=****" in repr(aws)


def test_secrets_reach_an_env_and_go_with_it(
    cluster: rh.Cluster, home: Path, rhzmq_home: Path
) -> None:
    db = rh.secret("db", values={"DB_PASSWORD": V["db"]}, files={"DB_PASSWORD": "db/password"})
    env = rh.env(name="secret_env", secrets=[rh.provider_secret("aws"), "huggingface", db])
    view = rh.function(ro.secret_view).to(cluster, env=env)
    seen = view()
    root = rhzmq_home / "secrets" / "secret_env"
    assert seen["aws_file"] == str(root / "aws" / "credentials")
    assert seen["aws_mode"] == 0o600 and seen["dir_mode"] == 0o700
    assert seen["boto3_key"] == V["aws_key"]  # boto3, from the delivered file alone
    assert seen["boto3_region"] == "eu-west-3"
    assert seen["hf_token"] == V["hf"]  # huggingface_hub's own lookup
    assert seen["db_password"] == V["db"] and seen["db_file"] == str(root / "db" / "password")
    # Not in the env's saved form, its status or its workers' listing.
    assert V["aws_secret"] not in json.dumps(env.config())
    assert env.config()["secret_refs"] == ["aws", "huggingface", "db"]
    assert V["aws_secret"] not in json.dumps(cluster.status())
    # Naming the env by string uses it as it runs: its workers keep their files.
    rh.function(ro.path_exists).to(cluster, env="secret_env", name="sec_exists")
    assert rh.function(ro.secret_view).to(cluster, env="secret_env", name="view2")()["aws_mode"]
    cluster.delete("secret_env")
    assert not root.exists()  # the files went with the env


def test_secret_to_a_running_worker(cluster: rh.Cluster, home: Path, rhzmq_home: Path) -> None:
    lam = rh.provider_secret("lambda")
    lam.to(cluster)  # the default worker, until it restarts
    assert rh.function(ro.getenv).to(cluster, name="sec_getenv")("LAMBDA_API_KEY") == V["lambda"]
    assert (rhzmq_home / "secrets" / "default" / "lambda_cloud" / "lambda_keys").exists()


def test_saved_secrets_and_the_command(home: Path, rhzmq_home: Path) -> None:
    gh = rh.provider_secret("github").save("gh")
    saved = next((rhzmq_home / "resources" / "secret" / "gh").glob("*.json"))
    assert saved.stat().st_mode & 0o077 == 0  # owner-only
    assert rh.secret("gh").values == gh.values and "gh" in rh.Secret.list()
    # An env that names a saved secret resolves it when sent, and saves only its name.
    rh.env(name="named_secret_env", secrets=["gh"]).save()
    assert rh.env(name="named_secret_env").secret_refs == ["gh"]
    with pytest.raises(ValueError, match="cannot be saved"):
        rh.env(name="x", secrets=[{"K": V["db"]}]).save()

    def rhzmq(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rhzmq", "secrets", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "RHZMQ_HOME": str(rhzmq_home)},
        )

    listed = rhzmq("ls").stdout
    assert "gh" in listed and "github" in listed and V["gh"] not in listed
    masked = rhzmq("show", "gh").stdout
    assert "token = ****" in masked and V["gh"] not in masked
    shown = subprocess.run(
        [sys.executable, "-m", "rhzmq", "resources", "show", "gh"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RHZMQ_HOME": str(rhzmq_home)},
    ).stdout
    assert '"token": "****"' in shown and V["gh"] not in shown
    refused = rhzmq("show", "gh", "--reveal", stdin="n\n")
    assert refused.returncode == 1 and V["gh"] not in refused.stdout
    revealed = rhzmq("show", "gh", "--reveal", stdin="y\n")
    assert revealed.returncode == 0 and V["gh"] in revealed.stdout
    assert rhzmq("rm", "gh").returncode == 0
    assert "gh" not in rh.Secret.list()
