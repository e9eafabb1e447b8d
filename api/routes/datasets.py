"""Uploaded datasets (`/v1/datasets`): upload, list, get, delete."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
