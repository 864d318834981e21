"""Serving certificates and authentication, as a kubeadm-built cluster has them.

- A CA the stand-in generates (EC P-256, python `cryptography`), a serving certificate for
  127.0.0.1 / localhost / kubernetes.default.svc signed by it, and an admin client certificate
  (CN `kubernetes-admin`, O `system:masters`). Kept in `STATE_DIR/pki/` so a restarted server
  keeps answering the kubeconfig it wrote.
- Authentication, in the apiserver's order: a client certificate the TLS layer verified against
  the CA (user = CN, groups = O), else a bearer token: the static admin token (as a
  `--token-auth-file` line would give it), or a service account token (ES256 JWT signed by the
  stand-in's service account key: bound tokens from `serviceaccounts/<name>/token`, legacy ones
  from `kubernetes.io/service-account-token` Secrets), checked against the ServiceAccount (and
  Secret) that must still exist. A request with no credentials is anonymous only on
  `/healthz`, `/livez`, `/readyz` (the 1.34 default of anonymous-auth limited to those
  endpoints); anything else without valid credentials is 401 `Unauthorized`.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os
import secrets
import ssl
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ADMIN_USER = "kubernetes-admin"
MASTERS_GROUP = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS_USER = "system:anonymous"
ANONYMOUS_PATHS = ("/healthz", "/livez", "/readyz")
ISSUER = "https://kubernetes.default.svc.cluster.local"
LEGACY_ISSUER = "kubernetes/serviceaccount"
SERVICE_ACCOUNT_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
DEFAULT_TOKEN_SECONDS = 3600
SERVER_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class Identity:
    """user.Info: who a request is."""

    user: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict)

    @property
    def privileged(self) -> bool:
        return MASTERS_GROUP in self.groups


ADMIN = Identity(ADMIN_USER, (MASTERS_GROUP, AUTHENTICATED))
ANONYMOUS = Identity(ANONYMOUS_USER, (UNAUTHENTICATED,))


class Unauthorized(Exception):
    """401: no valid credentials."""


def service_account_identity(namespace: str, name: str, uid: str = "") -> Identity:
    return Identity(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
        uid,
    )


# ------------------------------------------------------------------------------- PKI


def _write(path: str, data: bytes, private: bool = False) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    descriptor = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    names: tuple[str, ...] = (),
    addresses: tuple[str, ...] = (),
) -> x509.Certificate:
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650 if ca else 365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=not ca,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if names or addresses:
        alternatives: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        alternatives += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
        builder = builder.add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class Pki:
    """The CA, serving and admin certificates, the admin token and the service account key."""

    FILES = (
        "ca.crt",
        "ca.key",
        "apiserver.crt",
        "apiserver.key",
        "admin.crt",
        "admin.key",
        "sa.key",
        "admin.token",
    )

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if not all(os.path.exists(self.path(name)) for name in self.FILES):
            self._generate()
        self.ca_pem = self._read("ca.crt")
        self.admin_cert_pem = self._read("admin.crt")
        self.admin_key_pem = self._read("admin.key")
        self.admin_token = self._read("admin.token").decode().strip()
        self.sa_key = serialization.load_pem_private_key(self._read("sa.key"), None)
        public = self.sa_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.key_id = base64.urlsafe_b64encode(hashlib.sha256(public).digest()).decode().rstrip("=")

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def _read(self, name: str) -> bytes:
        with open(self.path(name), "rb") as handle:
            return handle.read()

    def _generate(self) -> None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("gpuops-sandbox-ca")
        ca = _certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = _certificate(
            _name("kube-apiserver"),
            server_key,
            ca_name,
            ca_key,
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
            names=SERVER_NAMES,
            addresses=("127.0.0.1", "::1"),
        )
        admin_key = ec.generate_private_key(ec.SECP256R1())
        admin = _certificate(
            _name(ADMIN_USER, (MASTERS_GROUP,)),
            admin_key,
            ca_name,
            ca_key,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        )
        pem = serialization.Encoding.PEM
        _write(self.path("ca.crt"), ca.public_bytes(pem))
        _write(self.path("ca.key"), _key_pem(ca_key), private=True)
        _write(self.path("apiserver.crt"), server.public_bytes(pem) + ca.public_bytes(pem))
        _write(self.path("apiserver.key"), _key_pem(server_key), private=True)
        _write(self.path("admin.crt"), admin.public_bytes(pem))
        _write(self.path("admin.key"), _key_pem(admin_key), private=True)
        _write(self.path("sa.key"), _key_pem(ec.generate_private_key(ec.SECP256R1())), True)
        _write(self.path("admin.token"), secrets.token_urlsafe(32).encode() + b"\n", True)

    def issue_client_certificate(self, user: str, groups: tuple[str, ...] = ()) -> tuple[str, str]:
        """(certificate PEM, key PEM) for a user, signed by the CA (tests: other identities)."""
        ca = x509.load_pem_x509_certificate(self.ca_pem)
        ca_key = serialization.load_pem_private_key(self._read("ca.key"), None)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(
            _name(user, groups), key, ca.subject, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key).decode()

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.path("apiserver.crt"), self.path("apiserver.key"))
        # Client certificates are optional (tokens are the other way in) but, when sent,
        # verified against the cluster CA during the handshake.
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cadata=self.ca_pem.decode())
        return context

    # --------------------------------------------------------------- service account tokens

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": "ES256", "kid": self.key_id}
        signing_input = (
            _b64(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64(json.dumps(claims, separators=(",", ":")).encode())
        )
        der = self.sa_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this stand-in signed, or None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_unb64(parts[0]))
            claims = json.loads(_unb64(parts[1]))
            raw = _unb64(parts[2])
        except (ValueError, TypeError):
            return None
        if not isinstance(header, dict) or header.get("alg") != "ES256" or len(raw) != 64:
            return None
        signature = encode_dss_signature(
            int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        )
        try:
            self.sa_key.public_key().verify(
                signature, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            return None
        return claims if isinstance(claims, dict) else None

    def bound_token(
        self,
        namespace: str,
        name: str,
        uid: str,
        seconds: int = DEFAULT_TOKEN_SECONDS,
        audiences: list[str] | None = None,
        bound_object: dict[str, str] | None = None,
    ) -> tuple[str, int]:
        """A TokenRequest token (what `kubectl create token` gets); (token, expiry epoch)."""
        issued = int(time.time())
        private: dict[str, Any] = {
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": uid},
        }
        if bound_object:
            private[bound_object["kind"].lower()] = {
                "name": bound_object["name"],
                "uid": bound_object.get("uid", ""),
            }
        claims = {
            "aud": audiences or [ISSUER],
            "exp": issued + seconds,
            "iat": issued,
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": private,
            "nbf": issued,
            "sub": f"system:serviceaccount:{namespace}:{name}",
        }
        return self.sign(claims), issued + seconds

    def legacy_token(self, namespace: str, account: str, uid: str, secret: str) -> str:
        """A token of a kubernetes.io/service-account-token Secret (no expiry)."""
        return self.sign(
            {
                "iss": LEGACY_ISSUER,
                "kubernetes.io/serviceaccount/namespace": namespace,
                "kubernetes.io/serviceaccount/secret.name": secret,
                "kubernetes.io/serviceaccount/service-account.name": account,
                "kubernetes.io/serviceaccount/service-account.uid": uid,
                "sub": f"system:serviceaccount:{namespace}:{account}",
            }
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ----------------------------------------------------------------------- authentication


def _certificate_identity(peer: dict[str, Any] | None) -> Identity | None:
    """user/groups from a verified peer certificate (ssl.getpeercert() form)."""
    if not peer:
        return None
    user, groups = "", []
    for rdn in peer.get("subject") or ():
        for key, value in rdn:
            if key == "commonName":
                user = value
            elif key == "organizationName":
                groups.append(value)
    if not user:
        return None
    return Identity(user, tuple(groups) + (AUTHENTICATED,))


class Authenticator:
    """Who a request is, from its TLS peer certificate and Authorization header."""

    def __init__(self, pki: Pki, cluster) -> None:
        self.pki = pki
        self.cluster = cluster

    def authenticate(self, path: str, authorization: str | None, peer: dict | None) -> Identity:
        identity = _certificate_identity(peer)
        if identity is not None:
            return identity
        if authorization:
            scheme, _unused, token = authorization.partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and token:
                found = self.token_identity(token)
                if found is not None:
                    return found
            raise Unauthorized()
        if path in ANONYMOUS_PATHS:
            return ANONYMOUS
        raise Unauthorized()

    def token_identity(self, token: str) -> Identity | None:
        if secrets.compare_digest(token, self.pki.admin_token):
            return ADMIN
        claims = self.pki.verify(token)
        if claims is None:
            return None
        if claims.get("iss") == LEGACY_ISSUER:
            return self._legacy(claims, token)
        if claims.get("iss") != ISSUER:
            return None
        now = time.time()
        if not isinstance(claims.get("exp"), int) or claims["exp"] < now:
            return None
        private = claims.get("kubernetes.io") or {}
        account = private.get("serviceaccount") or {}
        namespace, name, uid = private.get("namespace"), account.get("name"), account.get("uid")
        stored = self._object(("", "serviceaccounts"), namespace, name)
        if stored is None or stored["metadata"].get("uid") != uid:
            return None
        for kind, plural in (("pod", "pods"), ("secret", "secrets")):
            bound = private.get(kind)
            if bound:
                obj = self._object(("", plural), namespace, bound.get("name"))
                if obj is None or obj["metadata"].get("uid") != bound.get("uid"):
                    return None
        return service_account_identity(namespace, name, uid)

    def _legacy(self, claims: dict[str, Any], token: str) -> Identity | None:
        namespace = claims.get("kubernetes.io/serviceaccount/namespace")
        name = claims.get("kubernetes.io/serviceaccount/service-account.name")
        uid = claims.get("kubernetes.io/serviceaccount/service-account.uid")
        secret = self._object(
            ("", "secrets"), namespace, claims.get("kubernetes.io/serviceaccount/secret.name")
        )
        account = self._object(("", "serviceaccounts"), namespace, name)
        if secret is None or account is None or account["metadata"].get("uid") != uid:
            return None
        stored = (secret.get("data") or {}).get("token", "")
        try:
            if base64.b64decode(stored).decode() != token:
                return None
        except ValueError:
            return None
        return service_account_identity(namespace, name, uid)

    def _object(self, type_key, namespace, name) -> dict[str, Any] | None:
        if not isinstance(namespace, str) or not isinstance(name, str):
            return None
        record = self.cluster.store.get(type_key, (namespace, name))
        return record.decode() if record is not None else None
