"""C2PA content credentials: sign finished files, and read back what a file's credentials say."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from functions.errors import InvalidRequest, RefrainError

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATION_LABEL = "org.refrain.generation"
MIME_TYPES = {".wav": "audio/wav", ".m4a": "audio/mp4", ".mp3": "audio/mpeg", ".flac": "audio/flac"}
_DEV_ORG = "Refrain development (not a trusted publisher)"


@dataclass(frozen=True)
class SigningMaterial:
    """A signing key and its certificate chain (leaf first), PEM; `root_pem` is the chain's anchor."""

    key_pem: bytes
    chain_pem: bytes
    root_pem: bytes | None = None
    algorithm: str = "es256"


@dataclass(frozen=True)
class Provenance:
    """What a song's credentials state about how it was made."""

    title: str
    engine: str
    model_version: str
    seed: int
    prompt: str
    share_prompt: bool = True  # False: only the prompt's SHA-256 is recorded
    watermark: dict[str, Any] = field(default_factory=lambda: {"applied": False})
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CredentialReport:
    state: str  # "Valid", "Trusted", "Invalid", or "None" when the file carries no credentials
    generation: dict[str, Any]
    actions: list[dict[str, Any]]
    claim_generator: str
    failures: list[str]
    manifest: dict[str, Any]


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _DEV_ORG),
        ]
    )


def _key_usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_dev_chain(valid_days: int = 825) -> SigningMaterial:
    """A fresh development CA and signer (ES256). Files signed with it read as Valid, not Trusted."""
    now = dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("Refrain dev root"))
        .issuer_name(_name("Refrain dev root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("Refrain dev signer"))
        .issuer_name(root.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    root_pem = root.public_bytes(pem)
    return SigningMaterial(key_pem=key_pem, chain_pem=leaf.public_bytes(pem) + root_pem, root_pem=root_pem)


def dev_signing_material(directory: Path) -> SigningMaterial:
    """The development chain kept in `directory`, made on first use (the key file is private to the user)."""
    key_path, chain_path, root_path = (directory / n for n in ("signer.key", "chain.pem", "root.pem"))
    if not (key_path.is_file() and chain_path.is_file() and root_path.is_file()):
        directory.mkdir(parents=True, exist_ok=True)
        material = make_dev_chain()
        for path, data, mode in (
            (chain_path, material.chain_pem, 0o644),
            (root_path, material.root_pem or b"", 0o644),
            (key_path, material.key_pem, 0o600),
        ):
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.chmod(mode)
            os.replace(tmp, path)
    return SigningMaterial(key_path.read_bytes(), chain_path.read_bytes(), root_path.read_bytes())


def manifest_for(provenance: Provenance, version: str, created_at: dt.datetime) -> dict[str, Any]:
    prompt = provenance.prompt
    generation: dict[str, Any] = {
        "engine": provenance.engine,
        "model_version": provenance.model_version,
        "seed": provenance.seed,
        "created_at": created_at.isoformat(),
        "ai_generated": True,
        "watermark": provenance.watermark,
        **provenance.extra,
    }
    if provenance.share_prompt:
        generation["prompt"] = prompt
    else:
        generation["prompt_sha256"] = hashlib.sha256(prompt.encode()).hexdigest()
    actions: list[dict[str, Any]] = [
        {
            "action": "c2pa.created",
            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
            "softwareAgent": {
                "name": f"Refrain {provenance.engine} engine",
                "version": provenance.model_version,
            },
            "when": created_at.isoformat(),
        }
    ]
    # The watermark's status lives in our generation assertion. A `c2pa.watermarked` action needs a
    # `c2pa.soft-binding` assertion naming the watermark algorithm and value (the SDK refuses it
    # otherwise); that arrives with the watermark step itself.
    return {
        "claim_generator_info": [{"name": "Refrain", "version": version}],
        "title": provenance.title or "Untitled",
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": actions}},
            {"label": GENERATION_LABEL, "data": generation},
        ],
    }


def sign(
    path: Path,
    provenance: Provenance,
    material: SigningMaterial,
    version: str,
    created_at: dt.datetime | None = None,
) -> None:
    """Embed signed credentials in `path` (wav, m4a, mp3 or flac), replacing the file atomically."""
    mime = MIME_TYPES.get(path.suffix.lower())
    if mime is None:
        raise InvalidRequest(
            "path", str(path), f"cannot sign {path.name}: one of {', '.join(MIME_TYPES)} expected"
        )
    manifest = manifest_for(provenance, version, created_at or dt.datetime.now(dt.UTC))
    signer = c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(material.algorithm.encode(), material.chain_pem, material.key_pem, None)
    )
    fd, tmp_name = tempfile.mkstemp(prefix=".signing-", suffix=path.suffix, dir=path.parent)
    try:
        with c2pa.Builder(manifest) as builder, open(path, "rb") as source, os.fdopen(fd, "w+b") as dest:
            builder.sign(signer, mime, source, dest)
        os.replace(tmp_name, path)
    except c2pa.C2paError as exc:
        raise RefrainError(f"signing {path.name} failed: {exc}") from exc
    finally:
        signer.close()
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def verify(path: Path, trust_anchor_pem: bytes | None = None) -> CredentialReport:
    """Read and validate `path`'s credentials; with a trust anchor, a chain to it reads "Trusted"."""
    context = None
    if trust_anchor_pem is not None:
        context = c2pa.Context.from_dict(
            {"trust": {"trust_anchors": trust_anchor_pem.decode()}, "verify": {"verify_trust": True}}
        )
    try:
        reader = c2pa.Reader(str(path), context=context)
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__ or "ManifestNotFound" in str(exc):
            return CredentialReport("None", {}, [], "", [], {})
        raise RefrainError(f"cannot read credentials of {path.name}: {exc}") from exc
    with reader:
        manifest = reader.get_active_manifest() or {}
        state = reader.get_validation_state() or "Invalid"
        results = reader.get_validation_results() or {}
    assertions = {a["label"]: a.get("data", {}) for a in manifest.get("assertions", [])}
    failures = [f.get("code", "") for f in results.get("activeManifest", {}).get("failure", [])]
    generator = ", ".join(
        f"{g.get('name')} {g.get('version', '')}".strip() for g in manifest.get("claim_generator_info", [])
    )
    return CredentialReport(
        state=state,
        generation=assertions.get(GENERATION_LABEL, {}),
        actions=assertions.get("c2pa.actions.v2", {}).get("actions", []),
        claim_generator=generator,
        failures=failures,
        manifest=manifest,
    )


def describe(report: CredentialReport) -> str:
    """Human-readable lines for `genmusic verify`."""
    if report.state == "None":
        return "content credentials: none"
    lines = [
        f"content credentials: {report.state}"
        + (f" ({', '.join(report.failures)})" if report.failures else ""),
        f"  claim generator: {report.claim_generator}",
    ]
    for action in report.actions:
        source = action.get("digitalSourceType", "").rsplit("/", 1)[-1]
        lines.append(f"  action: {action.get('action')}" + (f" ({source})" if source else ""))
    for key in ("engine", "model_version", "seed", "created_at", "prompt", "prompt_sha256"):
        if key in report.generation:
            lines.append(f"  {key}: {report.generation[key]}")
    if "watermark" in report.generation:
        lines.append(f"  watermark: {json.dumps(report.generation['watermark'])}")
    return "\n".join(lines)
