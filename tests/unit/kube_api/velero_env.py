"""Shared fixtures of the Velero tests: one moto server that checks credentials and one
Kubernetes API stand-in running the velero controller against it, per test module."""

from __future__ import annotations

import contextlib
import json
import os
import uuid

import pytest

from conftest import SANDBOX_CRDS, api_client_for, start_server, stop_server

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

NS = "velero"
GROUP, VERSION = "velero.io", "v1"
CREDS = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint():
    """moto on 127.0.0.1 that checks credentials (as S3 does): an IAM user's access key is the
    only one accepted, so a BSL with other keys sees InvalidAccessKeyId."""
    from moto import settings

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    # moto's backends are per process, shared by every server it starts: a user of our own.
    user = f"velero-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="all",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    CREDS["AWS_ACCESS_KEY_ID"] = key["AccessKeyId"]
    CREDS["AWS_SECRET_ACCESS_KEY"] = key["SecretAccessKey"]
    saved = settings.INITIAL_NO_AUTH_ACTION_COUNT
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # from now on every request is authenticated
    yield endpoint
    settings.INITIAL_NO_AUTH_ACTION_COUNT = saved
    server.stop()


@pytest.fixture(scope="module")
def s3(s3_endpoint):
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDS["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def velero_server(tmp_path_factory, s3_endpoint):
    saved = {k: os.environ.get(k) for k in (*CREDS, "GPUOPS_SANDBOX_AWS_ENDPOINT")}
    os.environ.update(CREDS, GPUOPS_SANDBOX_AWS_ENDPOINT=s3_endpoint)
    try:
        server = start_server(
            tmp_path_factory.mktemp("velero"), SANDBOX_CRDS, "--controllers", "velero"
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def api(velero_server):
    from kubernetes import client

    with api_client_for(velero_server) as api_client:
        core = client.CoreV1Api(api_client)
        core.create_namespace({"metadata": {"name": NS}})
        yield api_client


@pytest.fixture(scope="module")
def custom(api):
    from kubernetes import client

    return client.CustomObjectsApi(api)


@pytest.fixture(scope="module")
def core(api):
    from kubernetes import client

    return client.CoreV1Api(api)


@contextlib.contextmanager
def presigned_urls_readable():
    """moto (5.2) checks only header-signed requests once authentication is on: a pre-signed
    URL (query-string signature, as Velero's DownloadRequest hands out) fails there with a
    server error. Real S3 and the sandbox's moto (no authentication) serve it; the tests
    that fetch one switch moto's authentication off for that while."""
    from moto import settings

    saved = settings.INITIAL_NO_AUTH_ACTION_COUNT
    settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
    try:
        yield
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = saved
