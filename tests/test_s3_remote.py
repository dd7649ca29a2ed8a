"""The team remote on S3: a real S3 API server (moto's server mode) on 127.0.0.1, started and stopped here.

A publisher pushes the canonical dataset and the fixture stage's outputs to a bucket; a fresh clone pulls
them and finds `make_fixture` up to date, bytes equal to dvc.lock. A wrong credential and a missing bucket
fail with one clear DVC error line, no traceback. The server authenticates (INITIAL_NO_AUTH_ACTION_COUNT:
the first 4 requests set up the bucket and an IAM user, every later one must be signed by that user).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading

import boto3
import pytest

from conftest import CANONICAL_REL, FIXTURE_REL, ROOT, SIDECAR
from ptychoreg.core.fileio import file_digest
from ptychoreg.harness.outputs import locked_md5s

pytestmark = pytest.mark.slow
BUCKET = "team"
SETUP_REQUESTS = 4  # create bucket, create user, put its policy, create its access key
TARGETS = (f"{CANONICAL_REL}.dvc", "make_fixture")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """(endpoint URL, credentials env) of a moto S3 server on a free loopback port."""
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(SETUP_REQUESTS))
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"], env=env, text=True,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    watchdog = threading.Timer(600, server.kill)  # bounded in time whatever happens
    watchdog.start()
    try:
        url = None
        for line in server.stderr:  # werkzeug announces the bound port once it listens
            match = re.search(r"Running on (http://127\.0\.0\.1:\d+)", line)
            if match:
                url = match.group(1)
                break
        assert url, "moto server did not start"
        threading.Thread(target=server.stderr.read, daemon=True).start()  # keep draining its request log
        setup = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
        boto3.client("s3", **setup).create_bucket(Bucket=BUCKET)
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName="ci")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="ci", PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="ci")["AccessKey"]
        nowhere = tmp_path_factory.mktemp("aws") / "none"  # no ~/.aws config can interfere
        credentials = dict(os.environ, DVC_NO_ANALYTICS="1", AWS_ACCESS_KEY_ID=key["AccessKeyId"],
                           AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"], AWS_DEFAULT_REGION="us-east-1",
                           AWS_CONFIG_FILE=str(nowhere), AWS_SHARED_CREDENTIALS_FILE=str(nowhere))
        yield url, credentials
    finally:
        server.terminate()
        server.wait(timeout=60)
        watchdog.cancel()


def _dvc(*args, cwd, env):
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=600)


def _clone(tmp_path, name, url, env, bucket=BUCKET):
    """A fresh clone whose `team` remote points at the S3 server (in .dvc/config.local, never committed)."""
    clone = tmp_path / name
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    for args in (("remote", "modify", "--local", "team", "url", f"s3://{bucket}/store"),
                 ("remote", "modify", "--local", "team", "endpointurl", url)):
        assert _dvc(*args, cwd=clone, env=env).returncode == 0
    return clone


def test_push_then_pull_restores_the_fixture_stage(s3, tmp_path, fixture_path):
    url, env = s3
    publisher = _clone(tmp_path, "publisher", url, env)
    assert _dvc("cache", "dir", "--local", str(ROOT / ".dvc" / "cache"), cwd=publisher, env=env).returncode == 0
    pushed = _dvc("push", *TARGETS, cwd=publisher, env=env)
    assert pushed.returncode == 0, pushed.stderr

    consumer = _clone(tmp_path, "consumer", url, env)
    pulled = _dvc("pull", *TARGETS, cwd=consumer, env=env)
    assert pulled.returncode == 0, pulled.stderr
    lock = {path: md5 for (_, path), md5 in locked_md5s((consumer / "dvc.lock").read_text()).items()}
    for output in (FIXTURE_REL, SIDECAR.relative_to(ROOT).as_posix()):
        assert file_digest(consumer / output, "md5") == lock[output]
    # Pulled, not rebuilt: DVC finds the stage up to date.
    assert _dvc("status", "-q", "make_fixture", cwd=consumer, env=env).returncode == 0


def _error_line(proc) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stdout + proc.stderr
    return next(line for line in proc.stderr.splitlines() if line.startswith("ERROR"))


def test_a_wrong_credential_is_one_clear_error(s3, tmp_path):
    url, env = s3
    clone = _clone(tmp_path, "wrong-key", url, env)
    line = _error_line(_dvc("pull", *TARGETS, cwd=clone, env=dict(env, AWS_SECRET_ACCESS_KEY="not-the-key")))
    assert "failed to connect to s3" in line and "Forbidden" in line


def test_a_missing_bucket_is_one_clear_error(s3, tmp_path):
    url, env = s3
    clone = _clone(tmp_path, "no-bucket", url, env, bucket="no-such-bucket")
    line = _error_line(_dvc("pull", *TARGETS, cwd=clone, env=env))
    assert "bucket does not exist" in line
