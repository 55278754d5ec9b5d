"""Credentials as GitHub checks them: app keys, RS256 JWTs, installation tokens, git Basic."""

from __future__ import annotations

import base64
import secrets
import string
from datetime import timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.github_emulator.errors import GitHubError, not_found
from tests.github_emulator.state import App, Installation, Repo, Token, World, now

JWT_MAX_LIFETIME = timedelta(minutes=10)
CLOCK_DRIFT = timedelta(seconds=60)
TOKEN_LIFETIME = timedelta(hours=1)


def new_key_pair() -> tuple[str, bytes]:
    """A fresh RSA key: (private key PEM for the app, public key PEM for the emulator)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private.decode(), public


def credential(authorization: str | None) -> str | None:
    """The secret of an `Authorization: token X` or `Bearer X` header."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() not in ("token", "bearer") or not value.strip():
        return None
    return value.strip()


def requires_authentication() -> GitHubError:
    return GitHubError(401, "Requires authentication")


def bad_credentials() -> GitHubError:
    return GitHubError(401, "Bad credentials")


def app_from_jwt(world: World, authorization: str | None) -> App:
    """The app whose key signed this JWT, checking GitHub's rules on iss, iat and exp."""
    token = credential(authorization)
    if token is None:
        raise GitHubError(401, "A JSON web token could not be decoded")
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise GitHubError(401, "A JSON web token could not be decoded") from None
    app = app_of_issuer(world, claims.get("iss"))
    if app is None:
        raise GitHubError(401, "'Issuer' claim ('iss') must be an Integer")
    try:
        jwt.decode(
            token,
            app.public_key_pem,
            algorithms=["RS256"],
            options={"require": ["exp", "iat", "iss"]},
            leeway=CLOCK_DRIFT,
        )
    except jwt.ExpiredSignatureError:
        raise GitHubError(401, "'Expiration time' claim ('exp') must be a future time") from None
    except jwt.ImmatureSignatureError:
        raise GitHubError(401, "'Issued at' claim ('iat') must be a time in the past") from None
    except jwt.PyJWTError:
        raise GitHubError(401, "A JSON web token could not be decoded") from None
    if claims["exp"] - claims["iat"] > JWT_MAX_LIFETIME.total_seconds() + CLOCK_DRIFT.seconds:
        raise GitHubError(401, "'Expiration time' claim ('exp') is too far in the future")
    return app


def app_of_issuer(world: World, iss: object) -> App | None:
    """GitHub takes the app id (a JSON number or a string of digits) or the client id."""
    if isinstance(iss, str) and iss.isdigit():
        iss = int(iss)
    for app in world.apps.values():
        if iss in (app.id, app.client_id):
            return app
    return None


def issue_token(world: World, installation: Installation, repos: list[Repo] | None) -> Token:
    """A new `ghs_` installation token, valid for an hour, optionally narrowed to some repos."""
    alphabet = string.ascii_letters + string.digits
    value = "ghs_" + "".join(secrets.choice(alphabet) for _ in range(36))
    ids = None if repos is None else frozenset(repo.id for repo in repos)
    token = Token(value, installation, now() + TOKEN_LIFETIME, ids)
    with world.lock:
        world.tokens[value] = token
    return token


def installation_token(world: World, authorization: str | None) -> Token:
    value = credential(authorization)
    if value is None:
        raise requires_authentication()
    return _live_token(world, value)


def _live_token(world: World, value: str) -> Token:
    token = world.tokens.get(value)
    if token is None or token.expires_at <= now():
        raise bad_credentials()
    return token


def repo_for_token(world: World, token: Token, owner: str, name: str) -> Repo:
    """The repository, if this token may see it; 404 otherwise, as GitHub hides private repos."""
    repo = world.repo(f"{owner}/{name}")
    if repo is None or not can_access(token, repo):
        raise not_found()
    return repo


def can_access(token: Token, repo: Repo) -> bool:
    if repo.installation is not token.installation:
        return False
    return token.repository_ids is None or repo.id in token.repository_ids


def has_permission(token: Token, scope: str, level: str = "write") -> bool:
    granted = token.installation.permissions.get(scope)
    return granted == "write" or (level == "read" and granted == "read")


def require_permission(token: Token, scope: str, level: str = "write") -> None:
    """403 as GitHub answers when the installation lacks a permission."""
    if not has_permission(token, scope, level):
        raise GitHubError(403, "Resource not accessible by integration")


def token_from_basic(world: World, authorization: str | None) -> Token | None:
    """The installation token of an `x-access-token:TOKEN` Basic header, if valid."""
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip()).decode()
    except ValueError:
        return None
    user, _, password = decoded.partition(":")
    if user != "x-access-token":
        return None
    try:
        return _live_token(world, password)
    except GitHubError:
        return None
