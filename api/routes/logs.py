"""A job's captured log lines (`/v1/experiments/{id}/logs`, with follow)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
