"""Credentials as GitHub checks them: app keys, RS256 JWTs, installation tokens, user-to-server
tokens, git Basic."""

from __future__ import annotations

import base64
import secrets
import string
from datetime import timedelta
from typing import TypeGuard

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.github_emulator.errors import GitHubError, not_found
from tests.github_emulator.state import (
    App,
    Installation,
    Repo,
    Token,
    User,
    UserToken,
    World,
    now,
)

JWT_MAX_LIFETIME = timedelta(minutes=10)
CLOCK_DRIFT = timedelta(seconds=60)
TOKEN_LIFETIME = timedelta(hours=1)
USER_TOKEN_LIFETIME = timedelta(hours=8)
REFRESH_TOKEN_LIFETIME = timedelta(seconds=15_897_600)
"""What github.com sends as `refresh_token_expires_in` (184 days; its docs say 15811200)."""


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


def not_accessible_by_integration() -> GitHubError:
    return GitHubError(403, "Resource not accessible by integration")


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
    ids = None if repos is None else frozenset(repo.id for repo in repos)
    token = Token(random_token("ghs_", 36), installation, now() + TOKEN_LIFETIME, ids)
    with world.lock:
        world.tokens[token.value] = token
    return token


def random_token(prefix: str, length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


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


def issue_user_token(world: World, app: App, user: User) -> UserToken:
    """A new `ghu_` token for 8 hours, with the `ghr_` refresh token that replaces it."""
    issued = now()
    token = UserToken(
        random_token("ghu_", 36), app, user, issued + USER_TOKEN_LIFETIME,
        random_token("ghr_", 76), issued + REFRESH_TOKEN_LIFETIME,
    )  # fmt: skip
    with world.lock:
        world.user_tokens[token.value] = token
        world.refresh_tokens[token.refresh_token] = token
    return token


def revoke_user_token(world: World, token: UserToken) -> None:
    with world.lock:
        world.user_tokens.pop(token.value, None)
        world.refresh_tokens.pop(token.refresh_token, None)


def is_user_token(value: str | None) -> TypeGuard[str]:
    """GitHub tells token kinds apart by prefix: `ghu_` acts as a user through an app."""
    return value is not None and value.startswith("ghu_")


def live_user_token(world: World, value: str) -> UserToken:
    token = world.user_tokens.get(value)
    if token is None or token.expires_at <= now():
        raise bad_credentials()
    return token


def user_token(world: World, authorization: str | None) -> UserToken:
    """The user token of a request to a route only people reach (`/user/...`): 401 without
    valid credentials, 403 for an app's JWT or installation token."""
    value = credential(authorization)
    if value is None:
        raise requires_authentication()
    if is_user_token(value):
        return live_user_token(world, value)
    if value.count(".") == 2:
        app_from_jwt(world, authorization)
    else:
        _live_token(world, value)
    raise not_accessible_by_integration()


def user_role(user: User, repo: Repo) -> str:
    """The user's role on the repository; anyone may read a public one."""
    role = repo.role_of(user.login)
    return "read" if role == "none" and not repo.private else role


def user_token_sees(token: UserToken, repo: Repo) -> bool:
    """What both the user and the app see: a public repository, or one the app is installed on
    that the user may read."""
    if not repo.private:
        return True
    installed = repo.installation is not None and repo.installation.app is token.app
    return installed and repo.role_of(token.user.login) != "none"


def repo_for_user_token(world: World, token: UserToken, owner: str, name: str) -> Repo:
    """The repository, if this user token may see it; 404 otherwise, as for private repos."""
    repo = world.repo(f"{owner}/{name}")
    if repo is None or not user_token_sees(token, repo):
        raise not_found()
    return repo


def has_permission(token: Token, scope: str, level: str = "write") -> bool:
    granted = token.installation.permissions.get(scope)
    return granted == "write" or (level == "read" and granted == "read")


def require_permission(token: Token, scope: str, level: str = "write") -> None:
    """403 as GitHub answers when the installation lacks a permission."""
    if not has_permission(token, scope, level):
        raise not_accessible_by_integration()


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
