"""People and their API tokens: admins create users, change roles, issue and revoke tokens.
`GET /me` tells any signed-in caller who they are."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, Field

from api.deps import Admin, ServicesDep, Viewer
from people.schemas import (
    TokenCreate,
    TokenIssued,
    TokenPublic,
    UserCreate,
    UserPublic,
    UserUpdate,
)

router = APIRouter(tags=["users"])

UserIdPath = Annotated[int, Path(ge=1, le=2**62)]
TokenIdPath = Annotated[int, Path(ge=1, le=2**62)]


class UserCreated(BaseModel):
    user: UserPublic
    token: str = Field(description="The user's first API token; shown once")


@router.get("/me", response_model=UserPublic, summary="The caller")
def me(user: Viewer) -> UserPublic:
    return user


@router.get("/users", response_model=list[UserPublic], summary="Every user")
def list_users(services: ServicesDep, admin: Admin) -> list[UserPublic]:
    return services.people.list_users()


@router.post(
    "/users",
    response_model=UserCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create a user with a first token (shown once)",
)
def create_user(services: ServicesDep, admin: Admin, body: UserCreate) -> UserCreated:
    user, token = services.people.create_user(body)
    return UserCreated(user=user, token=token)


@router.get("/users/{user_id}", response_model=UserPublic, summary="One user")
def get_user(services: ServicesDep, admin: Admin, user_id: UserIdPath) -> UserPublic:
    return services.people.get_user(user_id)


@router.patch("/users/{user_id}", response_model=UserPublic, summary="Change role or disable")
def update_user(
    services: ServicesDep, admin: Admin, user_id: UserIdPath, body: UserUpdate
) -> UserPublic:
    return services.people.update_user(user_id, body)


@router.get("/users/{user_id}/tokens", response_model=list[TokenPublic], summary="A user's tokens")
def list_tokens(services: ServicesDep, admin: Admin, user_id: UserIdPath) -> list[TokenPublic]:
    return services.people.list_tokens(user_id)


@router.post(
    "/users/{user_id}/tokens",
    response_model=TokenIssued,
    status_code=status.HTTP_201_CREATED,
    summary="Issue another token (shown once)",
)
def issue_token(
    services: ServicesDep, admin: Admin, user_id: UserIdPath, body: TokenCreate
) -> TokenIssued:
    info, token = services.people.issue_token(user_id, body.label)
    return TokenIssued(token=token, info=info)


@router.delete("/tokens/{token_id}", response_model=TokenPublic, summary="Revoke a token")
def revoke_token(services: ServicesDep, admin: Admin, token_id: TokenIdPath) -> TokenPublic:
    return services.people.revoke_token(token_id)
